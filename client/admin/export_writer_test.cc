#include "client/admin/export_writer.h"

#include <filesystem>

#include "common/file_util.h"
#include "common/sha256.h"
#include "gtest/gtest.h"

namespace wxp::admin {
namespace {

namespace fs = std::filesystem;

// `bytes` as the server streams a file: `piece`-byte chunks, the digest on the last one.
std::vector<v1::ExportChunk> Chunks(const std::string& name, const std::string& bytes,
                                    size_t piece) {
  std::vector<v1::ExportChunk> out;
  for (size_t off = 0; off < bytes.size() || out.empty(); off += piece) {
    v1::ExportChunk c;
    c.set_path(name);
    c.set_file_size(bytes.size());
    c.mutable_chunk()->set_offset(off);
    c.mutable_chunk()->set_data(bytes.substr(off, piece));
    c.set_utility(-0.5);
    out.push_back(c);
  }
  out.back().set_sha256(Sha256Hex(bytes));
  return out;
}

class ExportWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/export_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  // Feeds the chunks until one is refused; that status (or OK).
  absl::Status Feed(ExportWriter& w, const std::vector<v1::ExportChunk>& chunks) {
    for (const auto& c : chunks) {
      if (absl::Status s = w.Add(c); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  std::string dir_;
};

TEST_F(ExportWriterTest, WritesAndVerifiesEveryFile) {
  const std::string weights(3000, 'w'), config = R"({"peft_type":"LORA"})";
  ExportWriter w(dir_);
  ASSERT_TRUE(Feed(w, Chunks("adapter_model.safetensors", weights, 1024)).ok());
  ASSERT_TRUE(Feed(w, Chunks("adapter_config.json", config, 1024)).ok());
  auto done = w.Finish();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->utility, -0.5);
  EXPECT_EQ(done->files.at("adapter_model.safetensors").sha256, Sha256Hex(weights));
  EXPECT_EQ(done->files.at("adapter_config.json").size, config.size());
  EXPECT_EQ(*ReadFile(dir_ + "/adapter_model.safetensors"), weights);
  EXPECT_EQ(*ReadFile(dir_ + "/adapter_config.json"), config);
}

TEST_F(ExportWriterTest, EmptyFileIsOneChunk) {
  ExportWriter w(dir_);
  ASSERT_TRUE(Feed(w, Chunks("adapter_config.json", "", 1024)).ok());
  ASSERT_TRUE(w.Finish().ok());
  EXPECT_EQ(fs::file_size(dir_ + "/adapter_config.json"), 0u);
}

TEST_F(ExportWriterTest, RefusesAHashMismatch) {
  auto chunks = Chunks("adapter_model.safetensors", std::string(2000, 'x'), 512);
  chunks.back().set_sha256(Sha256Hex("something else"));
  ExportWriter w(dir_);
  absl::Status s = Feed(w, chunks);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("the server says"), std::string::npos) << s;
}

TEST_F(ExportWriterTest, RefusesNamesThatLeaveTheDirectory) {
  for (const std::string name : {"../evil", "a/b", "..", ".", ""}) {
    ExportWriter w(dir_);
    EXPECT_EQ(Feed(w, Chunks(name, "x", 4)).code(), absl::StatusCode::kDataLoss) << name;
  }
  EXPECT_FALSE(fs::exists(fs::path(dir_).parent_path() / "evil"));
}

TEST_F(ExportWriterTest, RefusesGapsOverrunsAndRepeats) {
  const std::string bytes(100, 'b');
  {
    auto chunks = Chunks("f", bytes, 30);
    chunks.erase(chunks.begin() + 1);  // a gap
    ExportWriter w(dir_ + "/");
    EXPECT_EQ(Feed(w, chunks).code(), absl::StatusCode::kDataLoss);
  }
  {
    auto chunks = Chunks("g", bytes, 30);
    chunks[1].set_file_size(50);  // the announced size changes
    ExportWriter w(dir_);
    EXPECT_EQ(Feed(w, chunks).code(), absl::StatusCode::kDataLoss);
  }
  {
    auto chunks = Chunks("h", bytes, 30);
    chunks.back().mutable_chunk()->mutable_data()->append("extra");  // longer than announced
    ExportWriter w(dir_);
    EXPECT_EQ(Feed(w, chunks).code(), absl::StatusCode::kDataLoss);
  }
  {
    ExportWriter w(dir_);
    ASSERT_TRUE(Feed(w, Chunks("i", bytes, 30)).ok());
    EXPECT_EQ(Feed(w, Chunks("i", bytes, 30)).code(), absl::StatusCode::kDataLoss);
  }
}

TEST_F(ExportWriterTest, AStreamCutShortIsNotAnExport) {
  auto chunks = Chunks("adapter_model.safetensors", std::string(100, 'c'), 30);
  chunks.pop_back();
  ExportWriter w(dir_);
  ASSERT_TRUE(Feed(w, chunks).ok());
  auto done = w.Finish();
  EXPECT_EQ(done.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(done.status().message().find("ended inside adapter_model.safetensors"),
            std::string::npos)
      << done.status();
  ExportWriter nothing(dir_);
  EXPECT_EQ(nothing.Finish().status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace wxp::admin
