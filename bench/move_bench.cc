// B1 (SPEC 9): the particle move on flat fp32 vectors of 1M, 16M and 64M parameters.
//
// Prints GB/s of parameters (4 bytes x parameters moved per second) for
//   wxp       the library's MoveParticle (and its bf16-target variant),
//   fused     a hand-fused single-pass loop over the same buffers, measured in the same run
//             (target: wxp >= 80% of it),
//   reference the reference implementation's approach: five load-weighted-sum-save passes over
//             safetensors files per particle per iteration (target: wxp >= 20x faster).
// Usage: bazel run //bench:move_bench -- [--sizes=1,16,64] [--reference_max=16]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/reference_move.h"
#include "common/rng.h"
#include "common/swarm_move.h"

ABSL_FLAG(std::string, sizes, "1,16,64", "vector sizes in Mi parameters");
ABSL_FLAG(int, reference_max, 64,
          "largest size (Mi parameters) to run the file-based reference on");
ABSL_FLAG(double, min_seconds, 1.0, "minimum measured time per figure");

namespace wxp {
namespace {

using Clock = std::chrono::steady_clock;

// Best time of each function over rounds that run them alternately, repeated until at
// least min_seconds have been spent: alternating exposes every variant to the same machine
// state (frequency, other load), so their ratio is fair even on a busy machine.
std::vector<double> TimeBestInterleaved(const std::vector<std::function<void()>>& fns,
                                        double min_seconds) {
  for (const auto& fn : fns) fn();  // warm-up: page in the buffers
  std::vector<double> best(fns.size(), 1e300);
  double total = 0;
  for (int round = 0; total < min_seconds || round < 3; ++round) {
    for (size_t i = 0; i < fns.size(); ++i) {
      const auto t0 = Clock::now();
      fns[i]();
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      best[i] = std::min(best[i], dt);
      total += dt;
    }
  }
  return best;
}

// The hand-fused reference loop: the same arithmetic, written out directly.
void HandFused(float a, float b, float c, float d, float step, float* __restrict x,
               float* __restrict v, const float* __restrict p, const float* __restrict g,
               const float* __restrict gw, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float vi = a * v[i] + b * (p[i] - x[i]) + c * (g[i] - x[i]) + d * (x[i] - gw[i]);
    v[i] = vi;
    x[i] = x[i] + step * vi;
  }
}

void Fill(std::vector<float>& buf, uint64_t key) {
  CounterRng rng(1, RngStream::kSynthetic, key);
  for (float& f : buf) f = static_cast<float>(0.02 * (rng.NextUniform() - 0.5));
}

}  // namespace
}  // namespace wxp

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace wxp;
  const double min_s = absl::GetFlag(FLAGS_min_seconds);
  std::vector<int64_t> sizes;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_sizes), ',')) {
    int64_t m;
    if (!absl::SimpleAtoi(s, &m) || m <= 0) {
      std::fprintf(stderr, "move_bench: bad --sizes entry '%s'\n", std::string(s).c_str());
      return 2;
    }
    sizes.push_back(m);
  }
  const MoveCoefficients k{0.2f, 0.3f, 0.4f, 0.1f, 0.5f};
  std::printf("B1 particle move, GB/s of fp32 parameters (4 bytes x params / s), single thread\n");
  std::printf("%-8s %10s %10s %10s %12s %10s %12s\n", "params", "wxp", "wxp-bf16", "fused",
              "reference", "wxp/fused", "wxp/ref");
  for (int64_t m : sizes) {
    const int64_t n = m << 20;
    // Stagger the buffers by a few cache lines: equal-size allocations otherwise start at the
    // same offset modulo the page size, and five streams that alias in L1 sets and in the
    // store-forwarding check measure the allocator rather than the kernel.
    std::vector<float> x(n + 16), v(n + 48), p(n + 80), g(n + 112), gw(n + 144);
    Fill(x, 1), Fill(v, 2), Fill(p, 3), Fill(g, 4), Fill(gw, 5);
    float* const px = x.data();
    float* const pv = v.data() + 16;
    const float* const pp = p.data() + 32;
    const float* const pg = g.data() + 48;
    const float* const pgw = gw.data() + 64;
    std::vector<uint16_t> p16(n), g16(n), gw16(n);
    for (int64_t i = 0; i < n; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &pp[i], 4), p16[i] = bits >> 16;
      std::memcpy(&bits, &pg[i], 4), g16[i] = bits >> 16;
      std::memcpy(&bits, &pgw[i], 4), gw16[i] = bits >> 16;
    }
    const double bytes = 4.0 * n;
    const std::vector<double> t = TimeBestInterleaved(
        {[&] { MoveParticle(k, px, pv, pp, pg, pgw, n); },
         [&] { HandFused(k.a, k.b, k.c, k.d, k.step, px, pv, pp, pg, pgw, n); },
         [&] { MoveParticleBf16Targets(k, px, pv, p16.data(), g16.data(), gw16.data(), n); }},
        3 * min_s);
    const double t_wxp = t[0], t_fused = t[1], t_bf16 = t[2];
    double t_ref = 0;
    if (m <= absl::GetFlag(FLAGS_reference_max)) {
      auto copy = [n](const float* f) { return std::vector<float>(f, f + n); };
      absl::StatusOr<double> r =
          TimeReferenceMove(copy(px), copy(pv), copy(pp), copy(pg), copy(pgw), k, min_s);
      if (!r.ok()) {
        std::fprintf(stderr, "move_bench: reference failed: %s\n",
                     std::string(r.status().message()).c_str());
        return 1;
      }
      t_ref = *r;
    }
    std::printf("%-8s %10.2f %10.2f %10.2f %12s %9.0f%% %12s\n", (std::to_string(m) + "Mi").c_str(),
                bytes / t_wxp / 1e9, bytes / t_bf16 / 1e9, bytes / t_fused / 1e9,
                t_ref > 0 ? std::to_string(bytes / t_ref / 1e9).substr(0, 6).c_str() : "skipped",
                100.0 * t_fused / t_wxp,
                t_ref > 0 ? (std::to_string(static_cast<int>(t_ref / t_wxp)) + "x").c_str() : "-");
    std::fflush(stdout);
  }
  std::printf("targets: wxp >= 80%% of fused; wxp >= 20x reference\n");
  return 0;
}
