#include "bench/paired_bootstrap.h"

#include "gtest/gtest.h"

namespace wxp::bench {
namespace {

std::vector<uint8_t> Pattern(size_t n, size_t every) {  // hit unless index % every == 0
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = i % every != 0;
  return v;
}

TEST(PairedBootstrapTest, EstimatesAreTheDataAndIntervalsCoverThem) {
  const size_t n = 4096;
  // Row 0: reference (3/4 hits); row 1: reference plus some extra hits; row 2: all hits.
  std::vector<uint8_t> better = Pattern(n, 4);
  for (size_t i = 0; i < n; i += 8) better[i] = 1;
  Outcomes o = {{Pattern(n, 4), Pattern(n, 4)},
                {better, better},
                {std::vector<uint8_t>(n, 1), std::vector<uint8_t>(n, 1)}};
  absl::StatusOr<std::vector<RowIntervals>> r = PairedBootstrap(o, 0, 2, {256, 500, 7});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_DOUBLE_EQ((*r)[0].accuracy.estimate, 0.75);
  EXPECT_DOUBLE_EQ((*r)[1].accuracy.estimate, 0.875);
  EXPECT_DOUBLE_EQ((*r)[1].delta.estimate, 0.125);
  EXPECT_DOUBLE_EQ((*r)[0].delta.estimate, 0);
  ASSERT_TRUE((*r)[1].gap_closed.has_value());
  EXPECT_DOUBLE_EQ((*r)[1].gap_closed->estimate, 0.5);
  for (const RowIntervals& row : *r) {
    EXPECT_LE(row.accuracy.lo, row.accuracy.estimate);
    EXPECT_GE(row.accuracy.hi, row.accuracy.estimate);
  }
  // The pattern repeats inside every block, so paired differences do not vary at all.
  EXPECT_DOUBLE_EQ((*r)[1].delta.lo, 0.125);
  EXPECT_DOUBLE_EQ((*r)[1].delta.hi, 0.125);
}

TEST(PairedBootstrapTest, SeedVarianceWidensTheInterval) {
  const size_t n = 1024;
  Outcomes o = {{std::vector<uint8_t>(n, 1), std::vector<uint8_t>(n, 0)}};
  absl::StatusOr<std::vector<RowIntervals>> r = PairedBootstrap(o, 0, std::nullopt, {});
  ASSERT_TRUE(r.ok());
  EXPECT_DOUBLE_EQ((*r)[0].accuracy.estimate, 0.5);
  EXPECT_DOUBLE_EQ((*r)[0].accuracy.lo, 0);  // both seeds drawn as the failing one
  EXPECT_DOUBLE_EQ((*r)[0].accuracy.hi, 1);
  EXPECT_FALSE((*r)[0].gap_closed.has_value());
}

TEST(PairedBootstrapTest, RefusesMismatchedShapes) {
  EXPECT_FALSE(PairedBootstrap({}, 0, std::nullopt, {}).ok());
  Outcomes o = {{{1, 0}}, {{1}}};
  EXPECT_FALSE(PairedBootstrap(o, 0, std::nullopt, {}).ok());
  Outcomes ok = {{{1, 0}}};
  EXPECT_FALSE(PairedBootstrap(ok, 1, std::nullopt, {}).ok());
  EXPECT_FALSE(PairedBootstrap(ok, 0, std::nullopt, {0, 10, 1}).ok());
}

}  // namespace
}  // namespace wxp::bench
