#include "common/retry.h"

#include "gtest/gtest.h"

namespace wxp {
namespace {

TEST(IsRetryableTest, TransientCodesAreRetried) {
  EXPECT_TRUE(IsRetryable(absl::UnavailableError("server restarting")));
  EXPECT_TRUE(IsRetryable(absl::UnavailableError("the disk holding /d/wxp.db is full")));
  EXPECT_TRUE(IsRetryable(absl::DeadlineExceededError("")));
  EXPECT_TRUE(IsRetryable(absl::AbortedError("")));
  EXPECT_TRUE(IsRetryable(absl::CancelledError("")));
  EXPECT_TRUE(IsRetryable(absl::InternalError("Received RST_STREAM")));
}

TEST(IsRetryableTest, RefusalsAndLimitsAreNot) {
  EXPECT_FALSE(IsRetryable(absl::OkStatus()));
  // Whatever the message says: the code decides.
  EXPECT_FALSE(IsRetryable(absl::ResourceExhaustedError("the disk is full, retry later")));
  EXPECT_FALSE(IsRetryable(absl::ResourceExhaustedError("blob is over the limit")));
  for (absl::StatusCode c : {absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound,
                             absl::StatusCode::kAlreadyExists, absl::StatusCode::kPermissionDenied,
                             absl::StatusCode::kFailedPrecondition, absl::StatusCode::kOutOfRange,
                             absl::StatusCode::kUnimplemented, absl::StatusCode::kDataLoss,
                             absl::StatusCode::kUnauthenticated, absl::StatusCode::kUnknown}) {
    EXPECT_FALSE(IsRetryable(absl::Status(c, "retry"))) << c;
  }
}

}  // namespace
}  // namespace wxp
