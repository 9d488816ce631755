#include "server/service/stream_limiter.h"

#include <optional>
#include <utility>

#include "gtest/gtest.h"

namespace wxp::server {
namespace {

TEST(StreamLimiterTest, RefusesBeyondTheLimitAndFreesSlotsOnRelease) {
  StreamLimiter limiter(2);
  absl::StatusOr<StreamLimiter::Slot> a = limiter.Acquire("UploadBlob");
  std::optional<absl::StatusOr<StreamLimiter::Slot>> b = limiter.Acquire("DownloadBlob");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b->ok());
  EXPECT_EQ(limiter.open(), 2);
  absl::StatusOr<StreamLimiter::Slot> c = limiter.Acquire("ExportBest");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(c.status().message().find("max_concurrent_streams"), std::string::npos);
  EXPECT_EQ(limiter.open(), 2);  // a refusal holds nothing
  b.reset();
  EXPECT_EQ(limiter.open(), 1);
  absl::StatusOr<StreamLimiter::Slot> d = limiter.Acquire("ExportBest");
  EXPECT_TRUE(d.ok());
}

TEST(StreamLimiterTest, AMovedSlotIsReleasedOnce) {
  StreamLimiter limiter(1);
  {
    absl::StatusOr<StreamLimiter::Slot> a = limiter.Acquire("UploadBlob");
    ASSERT_TRUE(a.ok());
    StreamLimiter::Slot moved = *std::move(a);
    EXPECT_EQ(limiter.open(), 1);
  }
  EXPECT_EQ(limiter.open(), 0);
}

}  // namespace
}  // namespace wxp::server
