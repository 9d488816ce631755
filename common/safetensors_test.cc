#include "common/safetensors.h"

#include <cstring>

#include "common/file_util.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

std::string LengthPrefix(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out;
}

// A file from a header and a data section, with a correct length prefix.
std::string MakeFile(const std::string& header, const std::string& data) {
  return LengthPrefix(header.size()) + header + data;
}

std::string Floats(std::initializer_list<float> values) {
  std::string out(values.size() * 4, '\0');
  std::memcpy(out.data(), values.begin(), out.size());
  return out;
}

void ExpectRejected(const std::string& bytes, const std::string& needle) {
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::FromBytes(bytes, "t.safetensors");
  ASSERT_FALSE(f.ok()) << "accepted; expected: " << needle;
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find(needle), std::string::npos) << f.status().message();
  EXPECT_NE(f.status().message().find("t.safetensors"), std::string::npos);
}

TEST(SafetensorsReadTest, ParsesTensorsInDataOrderWithMetadata) {
  // "b" is listed first in the header but stored second.
  const std::string header =
      R"({"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},)"
      R"("__metadata__":{"format":"pt","k":"v"},)"
      R"("a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}})";
  const std::string data = Floats({1.5f, -2.0f}) + std::string("\x80\x3f\x00\x40", 4);
  auto f = SafetensorsFile::FromBytes(MakeFile(header, data));
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->tensors()[0].name, "a");
  EXPECT_EQ(f->tensors()[0].shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(f->tensors()[0].numel, 2);
  EXPECT_EQ(f->tensors()[1].name, "b");
  EXPECT_EQ(f->tensors()[1].dtype, DType::kBF16);
  EXPECT_EQ(f->tensors()[1].data.size(), 4u);
  EXPECT_EQ(f->metadata(), (SafetensorsMetadata{{"format", "pt"}, {"k", "v"}}));
  EXPECT_FALSE(f->FlatF32View().has_value());  // one tensor is BF16
}

TEST(SafetensorsReadTest, FlatViewIsZeroCopyForF32) {
  const std::string header =
      R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("y":{"dtype":"F32","shape":[],"data_offsets":[8,12]}})";
  // Pad the header to 8 bytes as writers do, so the data is aligned.
  std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  auto f = SafetensorsFile::FromBytes(MakeFile(padded, Floats({1, 2, 3})));
  ASSERT_TRUE(f.ok()) << f.status();
  auto flat = f->FlatF32View();
  ASSERT_TRUE(flat.has_value());
  EXPECT_EQ(std::vector<float>(flat->begin(), flat->end()), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(reinterpret_cast<const char*>(flat->data()), f->tensors()[0].data.data());
  EXPECT_EQ(f->tensors()[1].numel, 1);  // a scalar
}

TEST(SafetensorsReadTest, EmptyHeaderObjectIsAValidEmptyFile) {
  auto f = SafetensorsFile::FromBytes(MakeFile("{}", ""));
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->tensors().empty());
}

TEST(SafetensorsReadTest, RejectsTruncatedAndOversizedHeaders) {
  ExpectRejected("", "truncated");
  ExpectRejected("abc", "truncated");
  ExpectRejected(LengthPrefix(100) + "{}", "runs past the end");
  ExpectRejected(LengthPrefix(~0ull) + "{}", "exceeds the limit");
  ExpectRejected(LengthPrefix(1ull << 40), "exceeds the limit");
}

TEST(SafetensorsReadTest, RejectsMalformedJson) {
  ExpectRejected(MakeFile("{\"a\":", ""), "not valid JSON");
  ExpectRejected(MakeFile("[1,2]", ""), "not a JSON object");
  ExpectRejected(MakeFile(R"({"a":5})", ""), "is not an object");
  ExpectRejected(MakeFile(R"({"__metadata__":{"k":1}})", ""), "not a string");
  ExpectRejected(MakeFile(R"({"__metadata__":[]})", ""), "__metadata__ is not an object");
}

TEST(SafetensorsReadTest, RejectsBadFields) {
  const std::string d4 = Floats({1});
  ExpectRejected(MakeFile(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", d4), "dtype");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", d4), "shape");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[1]}})", d4), "data_offsets");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", d4),
                 "data_offsets");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}})", d4),
                 "unsupported dtype 'Q4'");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", d4),
                 "shape entry -1");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", d4),
                 "shape entry 1.5");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", d4),
                 "not a non-negative integer");
  // A non-finite number cannot even be represented: the JSON parser refuses it.
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}})", d4),
                 "not valid JSON");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[NaN],"data_offsets":[0,4]}})", d4),
                 "not valid JSON");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}})", d4),
                 "not non-negative integers");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}})", d4),
                 "not non-negative integers");
  ExpectRejected(
      MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}})", d4),
      "not non-negative integers");
}

TEST(SafetensorsReadTest, RejectsSizeAndOffsetProblems) {
  const std::string d8 = Floats({1, 2});
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8),
                 "shape [3] of F32 but 8 data bytes");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", d8),
                 "begin 4 > end 0");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", d8),
                 "beyond the 8-byte data section");
  ExpectRejected(
      MakeFile(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
               d8),
      "overflows");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          d8),
                 "overlaps");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", d8),
                 "gap of 4 bytes");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d8),
                 "4 trailing bytes");
}

TEST(SafetensorsReadTest, RejectsDuplicateNames) {
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          Floats({1, 2})),
                 "'a' appears twice");
}

TEST(SafetensorsReadTest, OpenReportsMissingFilesAndMapsRealOnes) {
  EXPECT_EQ(SafetensorsFile::Open(::testing::TempDir() + "/nope.safetensors").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(SafetensorsFile::Open(::testing::TempDir()).ok());  // a directory
  const std::string path = ::testing::TempDir() + "/one.safetensors";
  ASSERT_TRUE(WriteFileAtomically(
                  path, MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                 Floats({7})))
                  .ok());
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  float v;
  std::memcpy(&v, f->tensors()[0].data.data(), 4);
  EXPECT_EQ(v, 7.0f);
  const std::string empty = ::testing::TempDir() + "/empty.safetensors";
  ASSERT_TRUE(WriteFileAtomically(empty, "").ok());
  EXPECT_EQ(SafetensorsFile::Open(empty).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SafetensorsWriteTest, CanonicalLayoutByteByByte) {
  const std::string a = Floats({1, 2});
  const std::string b("\x80\x3f\x00\x40", 4);
  auto bytes = SerializeSafetensors({{"a", DType::kF32, {2}, a}, {"b", DType::kBF16, {1, 2}, b}},
                                    {{"format", "pt"}});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  // 142 bytes of compact JSON, padded with 2 spaces to 144 (a multiple of 8).
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]}})"
      "  ";
  ASSERT_EQ(header.size(), 144u);
  EXPECT_EQ(*bytes, LengthPrefix(144) + header + a + b);
  // And it reads back.
  auto f = SafetensorsFile::FromBytes(*bytes);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->tensors()[1].data, b);
}

TEST(SafetensorsWriteTest, NoMetadataMeansNoMetadataKey) {
  auto bytes = SerializeSafetensors({{"x", DType::kF32, {}, Floats({3})}});
  ASSERT_TRUE(bytes.ok());
  const std::string header = R"({"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})";
  ASSERT_EQ(header.size(), 53u);  // padded with 3 spaces to 56
  EXPECT_EQ(*bytes, LengthPrefix(56) + header + "   " + Floats({3}));
}

TEST(SafetensorsWriteTest, RejectsInconsistentTensors) {
  const std::string four = Floats({1});
  EXPECT_FALSE(SerializeSafetensors({{"a", DType::kF32, {2}, four}}).ok());
  EXPECT_FALSE(SerializeSafetensors({{"a", DType::kF32, {-1}, four}}).ok());
  EXPECT_FALSE(SerializeSafetensors({{"", DType::kF32, {1}, four}}).ok());
  EXPECT_FALSE(SerializeSafetensors({{"__metadata__", DType::kF32, {1}, four}}).ok());
  EXPECT_FALSE(
      SerializeSafetensors({{"a", DType::kF32, {1}, four}, {"a", DType::kF32, {1}, four}}).ok());
}

}  // namespace
}  // namespace wxp
