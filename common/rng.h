// Counter-based random numbers: every draw is a pure function of (seed, stream, indices).
//
// Model Swarms is reproducible from one seed (SPEC 4). In the federated system the server
// issues coefficients for (iteration, particle) in whatever order agents ask, so draws must
// not depend on call order. Hashing the coordinates of a draw with SplitMix64 gives that:
// the in-process runner and the server produce bit-identical coefficients for the same seed.
#ifndef WXP_COMMON_RNG_H_
#define WXP_COMMON_RNG_H_

#include <cstdint>

namespace wxp {

// Named streams keep unrelated draws independent of each other.
enum class RngStream : uint64_t {
  kPool = 1,             // crossover parents and weights
  kInitialVelocity = 2,  // partner choice for the initial velocity
  kCoefficients = 3,     // r_v, r_p, r_g, r_w per particle per iteration
  kDropout = 4,          // Dropout-K/N in the in-process runner
  kMerge = 5,            // DARE masks
  kSynthetic = 6,        // synthetic adapters, hidden optimum, evaluator noise
  kAudit = 7,            // server audit sampling
  kBackoff = 8,          // jitter of client retry waits
  kLocalTraining = 9,    // seeds of local training (SPEC 4.4) per particle per iteration
  kGenerate = 10,        // sampled bytes of text generation from a token swarm's model
  kDpSampling = 11,      // DP-SGD's Poisson sampling of examples (common/dp_sgd.h)
  kDpNoise = 12,         // DP-SGD's Gaussian noise
};

// SplitMix64 finaliser: a bijective 64-bit mixer with full avalanche.
inline uint64_t Mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// 64 random bits for the draw at coordinates (a, b, c) of `stream` under `seed`.
inline uint64_t DrawBits(uint64_t seed, RngStream stream, uint64_t a, uint64_t b = 0,
                         uint64_t c = 0) {
  uint64_t h = Mix64(seed ^ Mix64(static_cast<uint64_t>(stream)));
  h = Mix64(h ^ a);
  h = Mix64(h ^ (b * 0xD1B54A32D192ED03ULL));
  return Mix64(h ^ (c * 0x8CB92BA72F3D8DD7ULL));
}

// Uniform double in [0, 1) with 53 random bits.
inline double DrawUniform(uint64_t seed, RngStream stream, uint64_t a, uint64_t b = 0,
                          uint64_t c = 0) {
  return static_cast<double>(DrawBits(seed, stream, a, b, c) >> 11) * 0x1.0p-53;
}

// Uniform integer in [0, n), n > 0 (multiply-shift; bias below 2^-32 for n < 2^32).
inline uint64_t DrawIndex(uint64_t seed, RngStream stream, uint64_t n, uint64_t a, uint64_t b = 0,
                          uint64_t c = 0) {
  const unsigned __int128 wide =
      static_cast<unsigned __int128>(DrawBits(seed, stream, a, b, c)) * n;
  return static_cast<uint64_t>(wide >> 64);
}

// A sequential generator over one stream, for loops that need many draws (synthetic
// adapters, DARE masks). Deterministic for (seed, stream, key).
class CounterRng {
 public:
  CounterRng(uint64_t seed, RngStream stream, uint64_t key = 0)
      : seed_(seed), stream_(stream), key_(key) {}
  uint64_t NextBits() { return DrawBits(seed_, stream_, key_, counter_++); }
  double NextUniform() { return static_cast<double>(NextBits() >> 11) * 0x1.0p-53; }
  // Standard normal by Box-Muller (one value per call; simple over fast).
  double NextGaussian();

 private:
  uint64_t seed_;
  RngStream stream_;
  uint64_t key_;
  uint64_t counter_ = 0;
};

}  // namespace wxp

#endif  // WXP_COMMON_RNG_H_
