// The synthetic task of SPEC 7: a cheap utility over adapters of any size, for scale runs,
// benchmarks and the in-process runner's tests.
//
// The utility is the negative RMS distance to a hidden optimum (plus optional noise). Model
// Swarms only ever forms affine combinations of the experts, so the optimum is placed at a
// random affine combination of them plus a small off-hull offset; the best utility any
// search can reach is then known exactly (ReachableUtility), which makes "how close did the
// swarm get" a measurable question.
#ifndef WXP_COMMON_SYNTHETIC_H_
#define WXP_COMMON_SYNTHETIC_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/evaluator.h"
#include "common/local_trainer.h"

namespace wxp {

// Name of the single score component the synthetic evaluator reports (maximised).
inline constexpr char kSyntheticComponent[] = "neg_rms_distance";

// `count` random experts of `dim` parameters, entries ~ N(0, scale^2), deterministic in seed.
std::vector<std::vector<float>> MakeRandomExperts(int count, int64_t dim, uint64_t seed,
                                                  double scale = 0.02);

// A hidden optimum for these experts: sum_i alpha_i x_i with sum alpha = 1 (alpha drawn
// around uniform, with some extrapolation) plus Gaussian noise of RMS
// `off_hull_rms`. InvalidArgument if experts are empty or of different lengths.
absl::StatusOr<std::vector<float>> MakeHiddenOptimum(const std::vector<std::vector<float>>& experts,
                                                     uint64_t seed, double off_hull_rms);

// The utility (negative RMS distance) of the point of the experts' affine hull closest to
// `target`: the best any Model Swarms run over these experts can score, noise aside.
absl::StatusOr<double> ReachableUtility(const std::vector<std::vector<float>>& experts,
                                        const std::vector<float>& target);

// Negative RMS distance between two equally long vectors.
double NegativeRmsDistance(absl::Span<const float> a, absl::Span<const float> b);

class SyntheticEvaluator : public Evaluator {
 public:
  // noise_stddev > 0 adds N(0, noise^2) noise, deterministic per (seed, particle, iteration).
  SyntheticEvaluator(std::vector<float> optimum, double noise_stddev = 0, uint64_t seed = 0)
      : optimum_(std::move(optimum)), noise_stddev_(noise_stddev), seed_(seed) {}

  // InvalidArgument if the position's length differs from the optimum's.
  absl::StatusOr<Scores> Evaluate(const EvaluationRequest& request) override;

 private:
  std::vector<float> optimum_;
  double noise_stddev_;
  uint64_t seed_;
};

// Local training on the synthetic task (SPEC 4.4), for tests and scale runs of the
// training path: a site's "data" is the hidden optimum seen through noise. Each of the
// request's steps is a gradient step on 0.5 |x - optimum|^2 with a seeded noisy gradient,
//   x <- x - learning_rate * (x - optimum + e),   e ~ N(0, (kSyntheticGradientNoise^2) / batch),
// computed in double per coordinate and rounded to float once per step. The noise is a
// pure function of (request.seed, step, coordinate), so a request always gives the same
// bytes, on any site.
inline constexpr double kSyntheticGradientNoise = 0.02;

class SyntheticTrainer : public LocalTrainer {
 public:
  explicit SyntheticTrainer(std::vector<float> optimum) : optimum_(std::move(optimum)) {}

  // InvalidArgument for a position of another length than the optimum, non-positive steps
  // or batch, or a learning rate that is not finite and > 0.
  absl::StatusOr<std::vector<float>> Train(const TrainingRequest& request) override;

 private:
  std::vector<float> optimum_;
};

}  // namespace wxp

#endif  // WXP_COMMON_SYNTHETIC_H_
