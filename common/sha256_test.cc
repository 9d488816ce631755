#include "common/sha256.h"

#include <cstdio>
#include <fstream>

#include "gtest/gtest.h"

namespace wxp {
namespace {

// FIPS 180-2 test vectors.
constexpr char kEmpty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""), kEmpty);
  EXPECT_EQ(Sha256Hex("abc"), kAbc);
}

TEST(Sha256Test, StreamingMatchesOneShotAndResets) {
  Sha256Hasher h;
  h.Update("a");
  h.Update("");
  h.Update("bc");
  EXPECT_EQ(h.FinalHex(), kAbc);
  EXPECT_EQ(h.FinalHex(), kEmpty);  // reset after Final
}

TEST(Sha256Test, FileDigestAndMissingFile) {
  const std::string path = ::testing::TempDir() + "/sha_abc";
  std::ofstream(path) << "abc";
  EXPECT_EQ(*Sha256File(path), kAbc);
  EXPECT_EQ(Sha256File(path + ".missing").status().code(), absl::StatusCode::kNotFound);
}

TEST(Sha256Test, RecognisesDigests) {
  EXPECT_TRUE(IsSha256Hex(kAbc));
  EXPECT_FALSE(IsSha256Hex("abc"));
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'G')));
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'A')));  // upper case is not canonical
}

}  // namespace
}  // namespace wxp
