// An evaluation's component scores as both SQL stores keep them: a JSON object of numbers
// in a text column. Internal to server/store.
#ifndef WXP_SERVER_STORE_INTERNAL_SCORES_JSON_H_
#define WXP_SERVER_STORE_INTERNAL_SCORES_JSON_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace wxp::store::internal {

std::string ScoresToJson(const std::map<std::string, double>& scores);
// DataLoss if `text` is not a JSON object of numbers (a database written by something else).
absl::StatusOr<std::map<std::string, double>> ScoresFromJson(const std::string& text);

}  // namespace wxp::store::internal

#endif  // WXP_SERVER_STORE_INTERNAL_SCORES_JSON_H_
