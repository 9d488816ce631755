#include "common/schema.h"

#include "common/sha256.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

Schema Make(std::vector<TensorSpec> tensors) {
  absl::StatusOr<Schema> s = Schema::Create(std::move(tensors));
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : Schema();
}

Schema TwoTensors() {
  return Make({{"a.lora_A", DType::kF32, {2, 3}}, {"a.lora_B", DType::kBF16, {3, 2}}});
}

TEST(SchemaTest, OffsetsAndSizes) {
  Schema s = TwoTensors();
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(s.total_params(), 12);
  EXPECT_EQ(s.offset(0), 0);
  EXPECT_EQ(s.offset(1), 6);
  EXPECT_EQ(s.tensor_sizes(), (std::vector<int64_t>{6, 6}));
  EXPECT_EQ(s.storage_bytes(), 6 * 4 + 6 * 2);
  EXPECT_EQ(Schema().total_params(), 0);
  EXPECT_EQ(Make({{"scalar", DType::kF64, {}}}).total_params(), 1);
}

TEST(SchemaTest, CreateRejectsInvalidSpecs) {
  auto message = [](std::vector<TensorSpec> t) {
    absl::Status s = Schema::Create(std::move(t)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    return std::string(s.message());
  };
  EXPECT_EQ(message({{"a", DType::kF32, {1}}, {"a", DType::kF32, {1}}}),
            "tensor 'a' appears twice");
  EXPECT_EQ(message({{"a", DType::kF32, {2, -1}}}), "tensor 'a' has shape [2, -1]");
  EXPECT_EQ(message({{"a\tb", DType::kF32, {1}}}), "tensor name 'a\tb' contains a tab or newline");
  EXPECT_EQ(message({{"", DType::kF32, {1}}}), "schema has a tensor with no name");
  EXPECT_EQ(message({{"a", DType::kF32, {1ll << 62, 4}}}),
            "tensor 'a' has shape [4611686018427387904, 4]");
  EXPECT_EQ(message({{"a", DType::kF32, {1ll << 62}}, {"b", DType::kF32, {1ll << 62}}}),
            "schema has more than 2^63 parameters");
}

TEST(SchemaTest, FingerprintIsShaOfTheDocumentedEncoding) {
  EXPECT_EQ(TwoTensors().Fingerprint(),
            Sha256Hex("wxp-schema-v1\na.lora_A\tF32\t2,3\na.lora_B\tBF16\t3,2\n"));
  // Pinned: the fingerprint is stored with every swarm, so it must never drift.
  // Both digests computed independently with coreutils sha256sum.
  EXPECT_EQ(TwoTensors().Fingerprint(),
            "58585dff35ceec97a1c2f14c770c7605746b10de0f210fc82da1c4e95bee4588");
  EXPECT_EQ(Schema().Fingerprint(),
            "c6ee7c56072b4173d452ecaebbe2f5b4e88eb64bcb6ff3d8665bdec6b010a156");
  EXPECT_EQ(Make({{"s", DType::kF16, {}}}).Fingerprint(), Sha256Hex("wxp-schema-v1\ns\tF16\t\n"));
  Schema reordered = Make({{"a.lora_B", DType::kBF16, {3, 2}}, {"a.lora_A", DType::kF32, {2, 3}}});
  EXPECT_NE(reordered.Fingerprint(), TwoTensors().Fingerprint());
  Schema other_dtype =
      Make({{"a.lora_A", DType::kF16, {2, 3}}, {"a.lora_B", DType::kBF16, {3, 2}}});
  EXPECT_NE(other_dtype.Fingerprint(), TwoTensors().Fingerprint());
  // [6] and [2,3] hold as many numbers but are different schemas.
  Schema flat = Make({{"a.lora_A", DType::kF32, {6}}, {"a.lora_B", DType::kBF16, {3, 2}}});
  EXPECT_NE(flat.Fingerprint(), TwoTensors().Fingerprint());
}

TEST(SchemaTest, CheckSameNamesTheFirstDifference) {
  EXPECT_TRUE(TwoTensors().CheckSame(TwoTensors()).ok());
  EXPECT_EQ(TwoTensors(), TwoTensors());
  auto msg = [](const Schema& s) {
    absl::Status st = s.CheckSame(TwoTensors());
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s, TwoTensors());
    return std::string(st.message());
  };
  EXPECT_EQ(msg(Make({{"a.lora_A", DType::kF32, {2, 3}}})),
            "schema mismatch: 1 tensors, expected 2");
  EXPECT_EQ(msg(Make({{"x", DType::kF32, {2, 3}}, {"a.lora_B", DType::kBF16, {3, 2}}})),
            "schema mismatch: tensor 0 is 'x', expected 'a.lora_A'");
  EXPECT_EQ(msg(Make({{"a.lora_A", DType::kF32, {2, 3}}, {"a.lora_B", DType::kF32, {3, 2}}})),
            "schema mismatch: tensor 'a.lora_B' is F32, expected BF16");
  EXPECT_EQ(msg(Make({{"a.lora_A", DType::kF32, {3, 2}}, {"a.lora_B", DType::kBF16, {3, 2}}})),
            "schema mismatch: tensor 'a.lora_A' has shape [3, 2], expected [2, 3]");
}

}  // namespace
}  // namespace wxp
