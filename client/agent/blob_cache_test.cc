#include "client/agent/blob_cache.h"

#include <filesystem>

#include "common/file_util.h"
#include "gtest/gtest.h"

namespace wxp::agent {
namespace {

namespace fs = std::filesystem;

TEST(BlobCacheTest, GarbageIsWhatNothingRefersToAndNothingUsedLately) {
  const std::string dir = ::testing::TempDir() + "/blob_cache_gc";
  fs::remove_all(dir);
  absl::StatusOr<BlobCache> cache = BlobCache::Open(dir);
  ASSERT_TRUE(cache.ok()) << cache.status();
  for (const char* name : {"x", "p", "old1", "old2", "recent", "d.partial", "v-1-3.f32"}) {
    ASSERT_TRUE(WriteFileAtomically(cache->Path(name), name).ok());
  }
  for (const char* name : {"old1", "old2", "recent"}) cache->Touch(name, /*keep_recent=*/1);
  cache->CollectGarbage({"x", "p", "v-1-3.f32"});
  for (const char* kept : {"x", "p", "v-1-3.f32", "recent", "d.partial"}) {
    EXPECT_TRUE(cache->Has(kept)) << kept;
  }
  EXPECT_FALSE(cache->Has("old1"));
  EXPECT_FALSE(cache->Has("old2"));
}

TEST(BlobCacheTest, LocalFilesJoinWithoutReplacingWhatIsThere) {
  const std::string dir = ::testing::TempDir() + "/blob_cache_add";
  fs::remove_all(dir);
  absl::StatusOr<BlobCache> cache = BlobCache::Open(dir);
  ASSERT_TRUE(cache.ok());
  const std::string outside = ::testing::TempDir() + "/expert.safetensors";
  ASSERT_TRUE(WriteFileAtomically(outside, "weights").ok());
  ASSERT_TRUE(cache->AddLocalFile(outside, "id1").ok());
  EXPECT_EQ(*ReadFile(cache->Path("id1")), "weights");
  ASSERT_TRUE(cache->AddLocalFile(outside, "id1").ok());
  EXPECT_FALSE(cache->AddLocalFile(::testing::TempDir() + "/absent", "id2").ok());
}

}  // namespace
}  // namespace wxp::agent
