#include "common/adapter.h"

#include <filesystem>

#include "common/file_util.h"
#include "common/sha256.h"
#include "common/testing/testdata.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

namespace fs = std::filesystem;

std::string TempPath(const std::string& name) {
  const std::string p = ::testing::TempDir() + "/adapter_test_" + name;
  fs::remove_all(p);
  return p;
}

Adapter Small(DType dtype) {
  Adapter a;
  a.schema = Schema({{"base_model.model.l0.q_proj.lora_A.weight", dtype, {2, 3}},
                     {"base_model.model.l0.q_proj.lora_B.weight", dtype, {3, 2}}});
  a.values = {0.5f, -1, 2, 0.25f, 3, -4, 1, 2, 3, 4, 5, 6};
  return a;
}

TEST(AdapterTest, RealPeftAdapterRoundTripsByteForByte) {
  std::optional<std::string> testdata = testing::SharedTestdataDir();
  if (!testdata) GTEST_SKIP() << "shared/testdata not found beside the workspace";
  const std::string dir = *testdata + "/peft/gpt2_tigrinya_lora_f32";
  absl::StatusOr<Adapter> a = LoadAdapter(dir);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->schema.tensors().size(), 72u);
  // 12 layers x (c_attn: 8x768 + 2304x8, attn.c_proj: 8x768 + 768x8, mlp.c_proj: 8x3072 + 768x8)
  EXPECT_EQ(a->schema.total_params(), 12 * (6144 + 18432 + 6144 + 6144 + 24576 + 6144));
  EXPECT_EQ(a->schema.tensors()[0].name,
            "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight");
  EXPECT_EQ(a->schema.tensors()[0].shape, (std::vector<int64_t>{8, 768}));
  auto config = ParseLoraConfig(*a->config_json);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->r, 8);
  EXPECT_EQ(config->lora_alpha, 32);
  EXPECT_EQ(config->target_modules, (std::vector<std::string>{"c_attn", "c_proj"}));
  EXPECT_EQ(config->base_model_name_or_path, "gpt2");

  const std::string out = TempPath("gpt2_copy");
  ASSERT_TRUE(SaveAdapterDir(*a, out).ok());
  EXPECT_EQ(*Sha256File(out + "/adapter_model.safetensors"),
            "130792c9a7496b3758e7a1e049ca51698a5776e59e1fc2911ff6c9d8ebd3fa05");
  EXPECT_EQ(*Sha256File(out + "/adapter_config.json"),
            "488f697f22ff12568c5d37ad3a8432e7cbc1cc7d13be4559a326c794a829581f");
  EXPECT_EQ(*BlobId(*a), "130792c9a7496b3758e7a1e049ca51698a5776e59e1fc2911ff6c9d8ebd3fa05");
  EXPECT_EQ(a->metadata, (SafetensorsMetadata{{"format", "pt"}}));
}

TEST(AdapterTest, DecodesEveryStorageDtypeToHandComputedFloats) {
  // bf16 0x3F80 = 1, 0xC000 = -2; f16 0x3555 = 1365/4096, 0x0001 = 2^-24; f64 0.1.
  const std::string bf16("\x80\x3f\x00\xc0", 4);
  const std::string f16("\x55\x35\x01\x00", 4);
  const double tenth = 0.1;
  const std::string f64(reinterpret_cast<const char*>(&tenth), 8);
  auto bytes = SerializeSafetensors(
      {{"b", DType::kBF16, {2}, bf16}, {"h", DType::kF16, {2}, f16}, {"d", DType::kF64, {}, f64}});
  ASSERT_TRUE(bytes.ok());
  auto file = SafetensorsFile::FromBytes(*bytes);
  ASSERT_TRUE(file.ok());
  Adapter a = AdapterFromSafetensors(*file);
  EXPECT_EQ(a.values, (std::vector<float>{1.0f, -2.0f, 1365.0f / 4096, 5.9604645e-08f, 0.1f}));
  EXPECT_EQ(a.schema.offset(2), 4);
  // Converted back, the bf16/f16 bytes are exact and f64 holds the fp32 value of 0.1.
  auto again = SerializeAdapter(a);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->substr(0, again->size() - 8), bytes->substr(0, bytes->size() - 8));
  const double widened = 0.1f;
  EXPECT_EQ(again->substr(again->size() - 8),
            std::string(reinterpret_cast<const char*>(&widened), 8));
}

TEST(AdapterTest, BlobIdIsTheDigestOfTheSavedFile) {
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    Adapter a = Small(dtype);
    a.metadata = {{"format", "pt"}};
    const std::string path = TempPath(std::string("blob_") + DTypeName(dtype));
    ASSERT_TRUE(SaveSafetensors(a, path).ok());
    EXPECT_EQ(*ReadFile(path), *SerializeAdapter(a));
    EXPECT_EQ(*BlobId(a), *Sha256File(path));
    EXPECT_EQ(*BlobId(a), Sha256Hex(*SerializeAdapter(a)));
  }
  Adapter changed = Small(DType::kF32);
  changed.values[0] = 0.75f;
  EXPECT_NE(*BlobId(changed), *BlobId(Small(DType::kF32)));
}

TEST(AdapterTest, EveryStorageDtypeRoundTrips) {
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
    Adapter a = Small(dtype);
    a.metadata = {{"format", "pt"}};
    const std::string dir = TempPath(std::string("small_") + DTypeName(dtype));
    ASSERT_TRUE(SaveAdapterDir(a, dir).ok());
    absl::StatusOr<Adapter> back = LoadAdapter(dir);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->schema, a.schema);
    EXPECT_EQ(back->values, a.values);  // every value is exact in every dtype
    EXPECT_EQ(back->metadata, a.metadata);
    // Written again unchanged: identical bytes.
    EXPECT_EQ(*SerializeAdapter(*back), *SerializeAdapter(a));
  }
}

TEST(AdapterTest, InferredConfigNamesRankAndModules) {
  Adapter a = Small(DType::kF32);
  const std::string dir = TempPath("inferred");
  ASSERT_TRUE(SaveAdapterDir(a, dir).ok());
  auto back = LoadAdapter(dir);
  ASSERT_TRUE(back.ok());
  auto config = ParseLoraConfig(*back->config_json);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->peft_type, "LORA");
  EXPECT_EQ(config->r, 2);
  EXPECT_EQ(config->target_modules, (std::vector<std::string>{"q_proj"}));
}

TEST(AdapterTest, UnknownConfigKeysSurvive) {
  Adapter a = Small(DType::kF32);
  a.config_json = R"({"r": 2, "some_future_key": {"nested": [1, 2]}, "peft_type": "LORA"})";
  const std::string dir = TempPath("unknown_keys");
  ASSERT_TRUE(SaveAdapterDir(a, dir).ok());
  EXPECT_EQ(*ReadFile(dir + "/adapter_config.json"), *a.config_json);
}

TEST(AdapterTest, BareSafetensorsFileLoadsWithoutConfig) {
  Adapter a = Small(DType::kBF16);
  const std::string path = TempPath("bare.safetensors");
  ASSERT_TRUE(WriteFileAtomically(path, *SerializeAdapter(a)).ok());
  auto back = LoadAdapter(path);
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->config_json.has_value());
  EXPECT_EQ(back->values, a.values);
}

TEST(AdapterTest, LoadErrorsNameTheProblem) {
  EXPECT_EQ(LoadAdapter(TempPath("missing")).status().code(), absl::StatusCode::kNotFound);
  const std::string dir = TempPath("incomplete");
  ASSERT_TRUE(MakeDirs(dir).ok());
  auto no_weights = LoadAdapter(dir);
  EXPECT_EQ(no_weights.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(no_weights.status().message().find("adapter_model.safetensors"), std::string::npos);

  ASSERT_TRUE(WriteFileAtomically(dir + "/adapter_model.bin", "pickle").ok());
  EXPECT_NE(LoadAdapter(dir).status().message().find("pickle"), std::string::npos);

  ASSERT_TRUE(
      WriteFileAtomically(dir + "/adapter_model.safetensors", *SerializeAdapter(Small(DType::kF32)))
          .ok());
  EXPECT_NE(LoadAdapter(dir).status().message().find("adapter_config.json"), std::string::npos);
  ASSERT_TRUE(WriteFileAtomically(dir + "/adapter_config.json", "[1, 2]").ok());
  auto bad_config = LoadAdapter(dir);
  EXPECT_EQ(bad_config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_config.status().message().find("not a JSON object"), std::string::npos);
  ASSERT_TRUE(WriteFileAtomically(dir + "/adapter_config.json", R"({"r": "eight"})").ok());
  EXPECT_NE(LoadAdapter(dir).status().message().find("'r'"), std::string::npos);

  ASSERT_TRUE(WriteFileAtomically(dir + "/adapter_config.json", "{}").ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/adapter_model.safetensors", "garbage!garbage").ok());
  auto bad_weights = LoadAdapter(dir);
  EXPECT_EQ(bad_weights.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_weights.status().message().find("adapter_model.safetensors"), std::string::npos);
}

TEST(AdapterTest, SerializeRejectsSizeMismatchAndCheckFiniteFindsNan) {
  Adapter a = Small(DType::kF32);
  a.values.pop_back();
  EXPECT_EQ(SerializeAdapter(a).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BlobId(a).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(SaveAdapterDir(a, TempPath("mismatch")).ok());
  Adapter b = Small(DType::kF32);
  EXPECT_TRUE(CheckFinite(b).ok());
  b.values[7] = std::nanf("");
  auto s = CheckFinite(b);
  EXPECT_NE(s.message().find("lora_B.weight' holds a non-finite value at element 1"),
            std::string::npos)
      << s.message();
}

}  // namespace
}  // namespace wxp
