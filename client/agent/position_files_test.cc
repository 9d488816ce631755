#include "client/agent/position_files.h"

#include <filesystem>

#include "common/adapter.h"
#include "common/sha256.h"
#include "common/swarm_move.h"
#include "gtest/gtest.h"

namespace wxp::agent {
namespace {
namespace fs = std::filesystem;

std::vector<float> Ramp(int64_t n, float scale) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>((i * 7919) % 1000) / 1000.0f;
  return v;
}

class PositionFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/position_files";
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  // Two tensors, one of them empty, spanning several chunks.
  Schema MakeSchema(DType dtype) {
    return Schema({{"a.lora_A.weight", dtype, {3, 100000}},
                   {"empty", dtype, {0}},
                   {"a.lora_B.weight", dtype, {700, 3}}});
  }
  std::string Save(const Schema& schema, const std::vector<float>& values) {
    Adapter a;
    a.schema = schema;
    a.values = values;
    const std::string path = dir_ + "/" + *BlobId(a);
    EXPECT_TRUE(SaveSafetensors(a, path).ok());
    return path;
  }
  std::string dir_;
};

TEST_F(PositionFilesTest, StreamedMoveEqualsTheInMemoryMoveAndNamesTheBlobByItsHash) {
  const Schema schema = MakeSchema(DType::kF32);
  const int64_t n = schema.total_params();
  const auto x = Ramp(n, 1), v = Ramp(n, -0.5), p = Ramp(n, 2), g = Ramp(n, 3), gw = Ramp(n, -1);
  FlatReader xr = *FlatReader::Position(Save(schema, x), schema);
  FlatReader pr = *FlatReader::Position(Save(schema, p), schema);
  FlatReader gr = *FlatReader::Position(Save(schema, g), schema);
  FlatReader gwr = *FlatReader::Position(Save(schema, gw), schema);
  {
    VelocityWriter vw = *VelocityWriter::Create(dir_ + "/v0");
    ASSERT_TRUE(vw.Write(v.data(), n).ok());
    ASSERT_TRUE(vw.Finish().ok());
  }
  FlatReader vr = *FlatReader::Velocity(dir_ + "/v0", n);
  PositionWriter xw = *PositionWriter::Create(dir_, schema, {});
  VelocityWriter vw = *VelocityWriter::Create(dir_ + "/v1");
  const MoveCoefficients k{0.2f, 0.3f, 0.4f, 0.1f, 0.5f};
  ASSERT_TRUE(StreamMove(k, false, {&xr, &vr, &pr, &gr, &gwr}, xw, vw).ok());
  const std::string id = *xw.Finish();
  ASSERT_TRUE(vw.Finish().ok());

  std::vector<float> want_x = x, want_v = v;
  MoveParticle(k, want_x.data(), want_v.data(), p.data(), g.data(), gw.data(), n);
  EXPECT_EQ(*Sha256File(dir_ + "/" + id), id);
  EXPECT_EQ(*LoadFlat(dir_ + "/" + id, schema), want_x);
  FlatReader got_v = *FlatReader::Velocity(dir_ + "/v1", n);
  std::vector<float> vv(n);
  ASSERT_TRUE(got_v.Read(vv.data(), n).ok());
  EXPECT_EQ(vv, want_v);
  // The file is exactly what SerializeAdapter makes of those values: the blob the server
  // would compute.
  Adapter a;
  a.schema = schema;
  a.values = want_x;
  EXPECT_EQ(*BlobId(a), id);
}

TEST_F(PositionFilesTest, RestartMovesFromThePersonalBestWithZeroVelocity) {
  const Schema schema = MakeSchema(DType::kF32);
  const int64_t n = schema.total_params();
  const auto x = Ramp(n, 1), p = Ramp(n, 2), g = Ramp(n, 3);
  FlatReader xr = *FlatReader::Position(Save(schema, x), schema);
  FlatReader vr = FlatReader::Zeros(n);
  FlatReader pr = *FlatReader::Position(Save(schema, p), schema);
  FlatReader gr = *FlatReader::Position(Save(schema, g), schema);
  FlatReader gwr = *FlatReader::Position(Save(schema, g), schema);
  PositionWriter xw = *PositionWriter::Create(dir_, schema, {});
  VelocityWriter vw = *VelocityWriter::Create(dir_ + "/v");
  const MoveCoefficients k{0.25f, 0.25f, 0.5f, 0.0f, 1.0f};
  ASSERT_TRUE(StreamMove(k, true, {&xr, &vr, &pr, &gr, &gwr}, xw, vw).ok());
  const std::string id = *xw.Finish();
  std::vector<float> want_x = p, want_v(n, 0.0f);
  MoveParticle(k, want_x.data(), want_v.data(), p.data(), g.data(), g.data(), n);
  EXPECT_EQ(*LoadFlat(dir_ + "/" + id, schema), want_x);
}

TEST_F(PositionFilesTest, Bf16PositionsAreReadAndWrittenInTheirDtype) {
  const Schema schema = MakeSchema(DType::kBF16);
  const int64_t n = schema.total_params();
  const auto x = Ramp(n, 1);
  PositionWriter w = *PositionWriter::Create(dir_, schema, {{"format", "pt"}});
  ASSERT_TRUE(w.Write(x.data(), 5).ok());
  ASSERT_TRUE(w.Write(x.data() + 5, n - 5).ok());
  const std::string id = *w.Finish();
  Adapter loaded = *LoadAdapter(dir_ + "/" + id);
  EXPECT_EQ(loaded.schema, schema);
  EXPECT_EQ(*LoadFlat(dir_ + "/" + id, schema), loaded.values);
  EXPECT_NEAR(loaded.values[1234], x[1234], 0.01);
}

TEST_F(PositionFilesTest, RefusesPositionsOfAnotherSchemaAndShortVelocities) {
  const Schema schema = MakeSchema(DType::kF32);
  const std::string path = Save(schema, Ramp(schema.total_params(), 1));
  const Schema other({{"a.lora_A.weight", DType::kF32, {3, 100000}},
                      {"empty", DType::kF32, {0}},
                      {"a.lora_B.weight", DType::kF32, {3, 700}}});
  auto r = FlatReader::Position(path, other);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("a.lora_B.weight"), std::string::npos) << r.status();

  auto v = FlatReader::Velocity(path, 10);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FlatReader::Position(dir_ + "/missing", schema).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(PositionFilesTest, AnUnfinishedWriterLeavesNothingBehind) {
  const Schema schema = MakeSchema(DType::kF32);
  const auto x = Ramp(schema.total_params(), 1);
  {
    PositionWriter w = *PositionWriter::Create(dir_, schema, {});
    ASSERT_TRUE(w.Write(x.data(), 10).ok());
    EXPECT_EQ(w.Finish().status().code(), absl::StatusCode::kFailedPrecondition);
  }
  {
    PositionWriter w = *PositionWriter::Create(dir_, schema, {});
    ASSERT_TRUE(w.Write(x.data(), 10).ok());
  }
  EXPECT_TRUE(fs::is_empty(dir_));
}

}  // namespace
}  // namespace wxp::agent
