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
  const std::string header = R"({"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},)"
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
  const std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
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
  ExpectRejected(MakeFile("[1,2]", ""), "does not start with '{'");
  ExpectRejected(MakeFile(R"({"a":5})", ""), "is not an object");
  ExpectRejected(MakeFile(R"({"__metadata__":{"k":1}})", ""), "not a string");
  ExpectRejected(MakeFile(R"({"__metadata__":[]})", ""), "__metadata__ is not an object");
  ExpectRejected(MakeFile(R"({"__metadata__":{"k":{}}})", ""), "value of 'k' is not a string");
  ExpectRejected(MakeFile(" {}", ""), "does not start with '{'");
  ExpectRejected(MakeFile("\xEF\xBB\xBF{}", ""), "does not start with '{'");  // a BOM
  ExpectRejected(MakeFile("", ""), "does not start with '{'");
  ExpectRejected(MakeFile("{} x", ""), "not valid JSON");
  ExpectRejected(MakeFile("{\"\xFF\":1}", ""), "not valid JSON");  // not UTF-8
}

TEST(SafetensorsReadTest, RejectsEmptyAndControlCharacterNames) {
  ExpectRejected(MakeFile(R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", Floats({1})),
                 "empty name");
  ExpectRejected(
      MakeFile(R"({"a\tb":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", Floats({1})),
      "\"a\\tb\": tensor name has a control character");
}

TEST(SafetensorsReadTest, RejectsDeepNestingBeforeBuildingIt) {
  ExpectRejected(MakeFile(R"({"a":{"shape":[[1]]}})", ""), "nests deeper than 3");
  ExpectRejected(MakeFile("{\"a\":" + std::string(1 << 20, '['), ""), "nests deeper");
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
                 "number overflow parsing '1e999'");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,1e999]}})", d4),
                 "number overflow");
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
      MakeFile(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", d8),
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
                 "tensor 'a' appears twice");
  ExpectRejected(MakeFile(R"({"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})",
                          Floats({1})),
                 "key 'dtype' appears twice in 'a'");
  ExpectRejected(MakeFile(R"({"__metadata__":{"k":"1","k":"2"}})", ""),
                 "key 'k' appears twice in '__metadata__'");
}

TEST(SafetensorsReadTest, KeepsMetadataOrderAndIgnoresUnknownEntryFields) {
  const std::string header =
      R"({"__metadata__":{"zeta":"1","alpha":"2","mid":"3"},)"
      R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":[1,2]},)"
      R"("empty":{"dtype":"F16","shape":[0,3],"data_offsets":[4,4]}}    )";
  auto f = SafetensorsFile::FromBytes(MakeFile(header, Floats({1})));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->metadata(), (SafetensorsMetadata{{"zeta", "1"}, {"alpha", "2"}, {"mid", "3"}}));
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->tensors()[1].name, "empty");
  EXPECT_EQ(f->tensors()[1].numel, 0);
  EXPECT_TRUE(f->tensors()[1].data.empty());
}

TEST(SafetensorsReadTest, OpenReportsMissingFilesAndMapsRealOnes) {
  EXPECT_EQ(SafetensorsFile::Open(::testing::TempDir() + "/nope.safetensors").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(SafetensorsFile::Open(::testing::TempDir()).ok());  // a directory
  const std::string path = ::testing::TempDir() + "/one.safetensors";
  ASSERT_TRUE(
      WriteFileAtomically(
          path, MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", Floats({7})))
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

TEST(SafetensorsWriteTest, RoundTripsEveryDTypeThroughAFile) {
  // Hand-encoded values: F16 1.0 = 0x3C00, -2.0 = 0xC000; BF16 0.5 = 0x3F00; F64 1.0.
  const std::string f16("\x00\x3c\x00\xc0", 4);
  const std::string bf16("\x00\x3f", 2);
  const std::string f64("\x00\x00\x00\x00\x00\x00\xf0\x3f", 8);
  const std::string f32 = Floats({-1.5f});
  const std::vector<TensorToWrite> tensors = {{"h", DType::kF16, {2}, f16},
                                              {"b", DType::kBF16, {1, 1}, bf16},
                                              {"d", DType::kF64, {1}, f64},
                                              {"s", DType::kF32, {}, f32}};
  const std::string path = ::testing::TempDir() + "/all_dtypes.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, tensors, {{"format", "pt"}}).ok());
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->tensors().size(), 4u);
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(f->tensors()[i].name, tensors[i].name);
    EXPECT_EQ(f->tensors()[i].dtype, tensors[i].dtype);
    EXPECT_EQ(f->tensors()[i].shape, tensors[i].shape);
    EXPECT_EQ(f->tensors()[i].data, tensors[i].data);
  }
  float back[2];
  ToFloat32(DType::kF16, f->tensors()[0].data.data(), 2, back);
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], -2.0f);
  ToFloat32(DType::kF64, f->tensors()[2].data.data(), 1, back);
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(f->bytes(), *SerializeSafetensors(tensors, {{"format", "pt"}}));
}

TEST(SafetensorsWriteTest, NonAsciiNamesAreWrittenRawLikeTheReference) {
  auto bytes = SerializeSafetensors({{"\xC3\xA9\"", DType::kF32, {}, Floats({0})}});
  ASSERT_TRUE(bytes.ok());
  // U+00E9 stays two raw UTF-8 bytes; the quote is escaped. 56 bytes, no padding.
  const std::string header =
      "{\"\xC3\xA9\\\"\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}";
  ASSERT_EQ(header.size(), 56u);
  EXPECT_EQ(bytes->substr(0, 64), LengthPrefix(56) + header);
}

TEST(SafetensorsWriteTest, RejectsInconsistentTensors) {
  EXPECT_EQ(SerializeSafetensors({{"\xFF", DType::kF32, {}, Floats({0})}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(SerializeSafetensors({}, {{"k", "1"}, {"k", "2"}}).ok());
  const std::string four = Floats({1});
  EXPECT_FALSE(SerializeSafetensors({{"a", DType::kF32, {2}, four}}).ok());
  EXPECT_FALSE(SerializeSafetensors({{"a", DType::kF32, {-1}, four}}).ok());
  EXPECT_FALSE(SerializeSafetensors({{"", DType::kF32, {1}, four}}).ok());
  EXPECT_FALSE(SerializeSafetensors({{"a\nb", DType::kF32, {1}, four}}).ok());
  EXPECT_FALSE(SerializeSafetensors({{"__metadata__", DType::kF32, {1}, four}}).ok());
  EXPECT_FALSE(
      SerializeSafetensors({{"a", DType::kF32, {1}, four}, {"a", DType::kF32, {1}, four}}).ok());
}

}  // namespace
}  // namespace wxp
