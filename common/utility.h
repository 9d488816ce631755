// The utility function f of SPEC 4.2: a weighted sum of named score components.
//
// Every evaluation keeps its component scores; the utility is derived from them under a
// weight version, so a change of weights (dynamic utility) re-ranks stored evaluations
// without re-running them.
#ifndef WXP_COMMON_UTILITY_H_
#define WXP_COMMON_UTILITY_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wxp {

// Component scores of one evaluation, by component name (ordered for stable output).
using Scores = std::map<std::string, double>;

struct UtilityComponent {
  std::string name;
  bool maximize = true;  // false: lower is better (e.g. perplexity); contributes -w*score
  double weight = 1.0;
  std::optional<double> min_value;  // valid range of the raw score, when declared
  std::optional<double> max_value;
};

// An immutable, validated utility function with a version number (1 for a new swarm; each
// weight change makes version + 1).
class UtilityFunction {
 public:
  // InvalidArgument: no components, an empty or duplicate name, a non-finite weight,
  // all weights zero, min > max or a non-finite bound.
  static absl::StatusOr<UtilityFunction> Create(std::vector<UtilityComponent> components,
                                                int version = 1);

  // The utility under these weights: sum of w * (maximize ? s : -s). InvalidArgument if a
  // declared component is missing, a score is NaN or infinite, or outside its valid range.
  // Scores of undeclared components are ignored (they are kept with the evaluation).
  absl::StatusOr<double> Combine(const Scores& scores) const;

  // Only the checks of Combine, for validating a report before it touches state.
  absl::Status CheckScores(const Scores& scores) const;

  // A new version with some weights replaced; InvalidArgument for an unknown component or
  // a non-finite weight, or if all weights would be zero.
  absl::StatusOr<UtilityFunction> WithWeights(const std::map<std::string, double>& weights) const;

  const std::vector<UtilityComponent>& components() const { return components_; }
  int version() const { return version_; }

 private:
  UtilityFunction(std::vector<UtilityComponent> components, int version)
      : components_(std::move(components)), version_(version) {}

  std::vector<UtilityComponent> components_;
  int version_;
};

}  // namespace wxp

#endif  // WXP_COMMON_UTILITY_H_
