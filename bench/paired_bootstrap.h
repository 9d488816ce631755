// Confidence intervals for B5 (SPEC 9): a paired, two-level bootstrap over seeds and over
// blocks of test positions.
//
// Input: for every row (method) and seed, the per-position outcome on the test split
// (1 = next byte predicted, 0 = not), every row and seed over the same positions in the
// same order. Positions are grouped into consecutive blocks of `block` positions (the last
// may be shorter), because neighbouring bytes of one text are not independent; blocks are
// the resampled unit. One replicate draws S seeds with replacement, then, for each drawn
// seed, as many blocks with replacement as there are; every row is scored on the very same
// draw (paired), so a row's difference to the reference row has its own, much tighter,
// interval. A row's statistic is the mean over the drawn seeds of its accuracy on the drawn
// blocks, so the intervals include seed-to-seed variance as well as position sampling.
// Intervals are percentile intervals (2.5 % and 97.5 % of the replicates); the point
// estimates are those of the data itself. With one seed only positions are resampled.
#ifndef WXP_BENCH_PAIRED_BOOTSTRAP_H_
#define WXP_BENCH_PAIRED_BOOTSTRAP_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"

namespace wxp::bench {

// outcomes[row][seed][position].
using Outcomes = std::vector<std::vector<std::vector<uint8_t>>>;

struct Interval {
  double estimate = 0;
  double lo = 0;
  double hi = 0;
};

struct BootstrapOptions {
  int block = 256;  // positions per resampled block
  int replicates = 2000;
  uint64_t seed = 1;  // of the resampling
};

struct RowIntervals {
  Interval accuracy;  // mean over seeds of the row's accuracy
  Interval delta;     // accuracy − the reference row's
  // (row − reference) / (bound − reference) when a bound row is given: the fraction of the
  // gap between the reference and the bound the row closes. Absent without a bound.
  std::optional<Interval> gap_closed;
};

// One entry per row. InvalidArgument for no rows, rows or seeds of different shapes, no
// positions, block < 1, replicates < 1, or a reference/bound index out of range.
absl::StatusOr<std::vector<RowIntervals>> PairedBootstrap(const Outcomes& outcomes,
                                                          size_t reference,
                                                          std::optional<size_t> bound,
                                                          const BootstrapOptions& options);

}  // namespace wxp::bench

#endif  // WXP_BENCH_PAIRED_BOOTSTRAP_H_
