// The reference implementation's way of moving a particle, for B1's comparison: every
// arithmetic step is a separate "load adapters from safetensors files, weighted sum, save
// a safetensors file" pass, as the original Model Swarms code does with its merge utility.
#ifndef WXP_BENCH_REFERENCE_MOVE_H_
#define WXP_BENCH_REFERENCE_MOVE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "common/swarm_move.h"

namespace wxp {

// Writes x, v, p, g, gw as safetensors files in a temporary directory, then times (best of
// repeated runs, at least `min_seconds` in total) one particle move done as five passes:
//   d1 = p - x;  d2 = g - x;  d3 = x - gw;  v = a v + b d1 + c d2 + d d3;  x = x + step v.
// Each pass loads its inputs from files into fp32 buffers and saves its output to a file.
// Returns seconds per move. Files are written without fsync, as the reference does.
absl::StatusOr<double> TimeReferenceMove(const std::vector<float>& x, const std::vector<float>& v,
                                         const std::vector<float>& p, const std::vector<float>& g,
                                         const std::vector<float>& gw, const MoveCoefficients& k,
                                         double min_seconds);

}  // namespace wxp

#endif  // WXP_BENCH_REFERENCE_MOVE_H_
