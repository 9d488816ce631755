#include "server/store/internal/scores_json.h"

#include "nlohmann/json.hpp"

namespace wxp::store::internal {

std::string ScoresToJson(const std::map<std::string, double>& scores) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : scores) j[k] = v;
  return j.dump();
}

absl::StatusOr<std::map<std::string, double>> ScoresFromJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::DataLossError("stored scores are not a JSON object");
  std::map<std::string, double> out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_number()) return absl::DataLossError("stored score is not a number");
    out[it.key()] = it.value().get<double>();
  }
  return out;
}

}  // namespace wxp::store::internal
