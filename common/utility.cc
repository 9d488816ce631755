#include "common/utility.h"

#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"

namespace wxp {

absl::StatusOr<UtilityFunction> UtilityFunction::Create(std::vector<UtilityComponent> components,
                                                        int version) {
  if (components.empty()) {
    return absl::InvalidArgumentError("a utility needs at least one component");
  }
  std::set<std::string> names;
  bool any_weight = false;
  for (const UtilityComponent& c : components) {
    if (c.name.empty()) return absl::InvalidArgumentError("a utility component has no name");
    if (!names.insert(c.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("utility component '", c.name, "' is declared twice"));
    }
    if (!std::isfinite(c.weight)) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight of utility component '", c.name, "' is not finite"));
    }
    any_weight |= c.weight != 0;
    if ((c.min_value && !std::isfinite(*c.min_value)) ||
        (c.max_value && !std::isfinite(*c.max_value))) {
      return absl::InvalidArgumentError(
          absl::StrCat("valid range of utility component '", c.name, "' is not finite"));
    }
    if (c.min_value && c.max_value && *c.min_value > *c.max_value) {
      return absl::InvalidArgumentError(
          absl::StrCat("valid range of utility component '", c.name, "' has min > max"));
    }
  }
  if (!any_weight) return absl::InvalidArgumentError("every utility weight is zero");
  return UtilityFunction(std::move(components), version);
}

absl::Status UtilityFunction::CheckScores(const Scores& scores) const {
  for (const UtilityComponent& c : components_) {
    auto it = scores.find(c.name);
    if (it == scores.end()) {
      return absl::InvalidArgumentError(absl::StrCat("score '", c.name, "' is missing"));
    }
    const double s = it->second;
    if (!std::isfinite(s)) {
      return absl::InvalidArgumentError(absl::StrCat("score '", c.name, "' is not finite"));
    }
    if ((c.min_value && s < *c.min_value) || (c.max_value && s > *c.max_value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("score '", c.name, "' = ", s, " is outside its valid range [",
                       c.min_value ? absl::StrCat(*c.min_value) : "-inf", ", ",
                       c.max_value ? absl::StrCat(*c.max_value) : "inf", "]"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<double> UtilityFunction::Combine(const Scores& scores) const {
  if (absl::Status s = CheckScores(scores); !s.ok()) return s;
  double u = 0;
  for (const UtilityComponent& c : components_) {
    const double s = scores.at(c.name);
    u += c.weight * (c.maximize ? s : -s);
  }
  return u;
}

absl::StatusOr<UtilityFunction> UtilityFunction::WithWeights(
    const std::map<std::string, double>& weights) const {
  std::vector<UtilityComponent> next = components_;
  for (const auto& [name, w] : weights) {
    bool found = false;
    for (UtilityComponent& c : next) {
      if (c.name == name) {
        c.weight = w;
        found = true;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("the utility has no component named '", name, "'"));
    }
  }
  return Create(std::move(next), version_ + 1);
}

}  // namespace wxp
