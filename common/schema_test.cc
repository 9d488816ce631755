#include "common/schema.h"

#include "common/sha256.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

Schema TwoTensors() {
  return Schema({{"a.lora_A", DType::kF32, {2, 3}}, {"a.lora_B", DType::kBF16, {3, 2}}});
}

TEST(SchemaTest, OffsetsAndSizes) {
  Schema s = TwoTensors();
  EXPECT_EQ(s.total_params(), 12);
  EXPECT_EQ(s.offset(0), 0);
  EXPECT_EQ(s.offset(1), 6);
  EXPECT_EQ(s.tensor_sizes(), (std::vector<int64_t>{6, 6}));
  EXPECT_EQ(s.storage_bytes(), 6 * 4 + 6 * 2);
}

TEST(SchemaTest, FingerprintIsShaOfTheDocumentedEncoding) {
  EXPECT_EQ(TwoTensors().Fingerprint(),
            Sha256Hex("wxp-schema-v1\na.lora_A\tF32\t2,3\na.lora_B\tBF16\t3,2\n"));
  Schema reordered({{"a.lora_B", DType::kBF16, {3, 2}}, {"a.lora_A", DType::kF32, {2, 3}}});
  EXPECT_NE(reordered.Fingerprint(), TwoTensors().Fingerprint());
  Schema other_dtype({{"a.lora_A", DType::kF16, {2, 3}}, {"a.lora_B", DType::kBF16, {3, 2}}});
  EXPECT_NE(other_dtype.Fingerprint(), TwoTensors().Fingerprint());
}

TEST(SchemaTest, CheckSameNamesTheFirstDifference) {
  EXPECT_TRUE(TwoTensors().CheckSame(TwoTensors()).ok());
  auto msg = [](const Schema& s) { return std::string(s.CheckSame(TwoTensors()).message()); };
  EXPECT_EQ(msg(Schema({{"a.lora_A", DType::kF32, {2, 3}}})),
            "schema mismatch: 1 tensors, expected 2");
  EXPECT_EQ(msg(Schema({{"x", DType::kF32, {2, 3}}, {"a.lora_B", DType::kBF16, {3, 2}}})),
            "schema mismatch: tensor 0 is 'x', expected 'a.lora_A'");
  EXPECT_EQ(msg(Schema({{"a.lora_A", DType::kF32, {2, 3}}, {"a.lora_B", DType::kF32, {3, 2}}})),
            "schema mismatch: tensor 'a.lora_B' is F32, expected BF16");
  EXPECT_EQ(msg(Schema({{"a.lora_A", DType::kF32, {3, 2}}, {"a.lora_B", DType::kBF16, {3, 2}}})),
            "schema mismatch: tensor 'a.lora_A' has shape [3, 2], expected [2, 3]");
}

}  // namespace
}  // namespace wxp
