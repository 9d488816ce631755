#include "common/alpha_blob.h"

#include <cmath>
#include <vector>

#include "common/sha256.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

TEST(AlphaBlobTest, RoundTripsAndIsCanonical) {
  const std::vector<float> alpha = {1.0f, -0.25f, 0.5f};
  auto bytes = AlphaBlobBytes(alpha);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*AlphaBlobBytes(alpha), *bytes);  // the same floats, the same bytes
  EXPECT_EQ(*AlphaBlobId(alpha), Sha256Hex(*bytes));
  auto back = AlphaFromBlobBytes(*bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, alpha);
  EXPECT_NE(*AlphaBlobId({1.0f, -0.25f, 0.5000001f}), *AlphaBlobId(alpha));
}

TEST(AlphaBlobTest, RefusesEmptyAndNonFiniteAlpha) {
  EXPECT_EQ(AlphaBlobBytes({}).status().code(), absl::StatusCode::kInvalidArgument);
  auto nan = AlphaBlobBytes({1.0f, std::nanf("")});
  EXPECT_EQ(nan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(nan.status().message().find("alpha[1]"), absl::string_view::npos);
}

}  // namespace
}  // namespace wxp
