#include "common/dp_record.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace wxp::dp {
namespace {

using Json = nlohmann::ordered_json;

absl::Status Bad(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("privacy record: ", what));
}

// The value of `key` in `j` as a number, or an error naming the key.
absl::StatusOr<double> Number(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return Bad(absl::StrCat("'", key, "' must be a number"));
  return it->get<double>();
}

// Recomputed ε may differ from the recorded one by rounding in the JSON text only.
constexpr double kEpsilonSlack = 1e-9;

}  // namespace

absl::StatusOr<PrivacyRecord> MakePrivacyRecord(std::vector<PrivacyPhase> phases, double delta,
                                                int64_t examples) {
  std::vector<SgmPhase> sgm;
  for (const PrivacyPhase& p : phases) sgm.push_back(p.sgm());
  absl::StatusOr<PrivacySpent> spent = ComputeEpsilon(sgm, delta);
  if (!spent.ok()) return spent.status();
  PrivacyRecord r;
  r.epsilon = spent->epsilon;
  r.delta = delta;
  r.examples = examples;
  r.phases = std::move(phases);
  return r;
}

std::string EncodePrivacyRecord(const PrivacyRecord& r) {
  Json j;
  j["epsilon"] = r.epsilon;
  j["delta"] = r.delta;
  j["accountant"] = r.accountant;
  j["examples"] = r.examples;
  Json phases = Json::array();
  for (const PrivacyPhase& p : r.phases) {
    phases.push_back({{"what", p.what},
                      {"sample_rate", p.sample_rate},
                      {"noise_multiplier", p.noise_multiplier},
                      {"clip_norm", p.clip_norm},
                      {"steps", p.steps}});
  }
  j["phases"] = phases;
  return j.dump();
}

absl::StatusOr<PrivacyRecord> DecodePrivacyRecord(const std::string& text) {
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Bad("not a JSON object");
  PrivacyRecord r;
  absl::StatusOr<double> eps = Number(j, "epsilon"), delta = Number(j, "delta");
  if (!eps.ok()) return eps.status();
  if (!delta.ok()) return delta.status();
  r.epsilon = *eps;
  r.delta = *delta;
  if (!(r.epsilon >= 0 && std::isfinite(r.epsilon))) return Bad("epsilon must be finite, >= 0");
  if (!(r.delta > 0 && r.delta < 1)) return Bad("delta must be in (0, 1)");
  auto acc = j.find("accountant");
  if (acc == j.end() || !acc->is_string() || acc->get<std::string>() != kAccountantName) {
    return Bad(absl::StrCat("unknown accountant (this build knows '", kAccountantName, "')"));
  }
  auto ex = j.find("examples");
  if (ex == j.end() || !ex->is_number_integer() || ex->get<int64_t>() < 1) {
    return Bad("'examples' must be an integer >= 1");
  }
  r.examples = ex->get<int64_t>();
  auto phases = j.find("phases");
  if (phases == j.end() || !phases->is_array() || phases->empty()) {
    return Bad("'phases' must be a non-empty array");
  }
  for (const Json& pj : *phases) {
    if (!pj.is_object()) return Bad("a phase is not an object");
    PrivacyPhase p;
    auto what = pj.find("what");
    if (what != pj.end() && what->is_string()) p.what = what->get<std::string>();
    absl::StatusOr<double> q = Number(pj, "sample_rate"), sigma = Number(pj, "noise_multiplier"),
                           clip = Number(pj, "clip_norm");
    for (const auto* v : {&q, &sigma, &clip}) {
      if (!v->ok()) return v->status();
    }
    p.sample_rate = *q;
    p.noise_multiplier = *sigma;
    p.clip_norm = *clip;
    auto steps = pj.find("steps");
    if (steps == pj.end() || !steps->is_number_integer() || steps->get<int64_t>() < 0) {
      return Bad("a phase's 'steps' must be an integer >= 0");
    }
    p.steps = steps->get<int64_t>();
    if (!(p.clip_norm > 0 && std::isfinite(p.clip_norm))) {
      return Bad("a phase's clip_norm must be finite and > 0");
    }
    r.phases.push_back(std::move(p));
  }
  absl::StatusOr<PrivacyRecord> recomputed = MakePrivacyRecord(r.phases, r.delta, r.examples);
  if (!recomputed.ok()) return Bad(std::string(recomputed.status().message()));
  if (r.epsilon + kEpsilonSlack < recomputed->epsilon) {
    return Bad(
        absl::StrCat("records epsilon ", r.epsilon, " but its phases spend ", recomputed->epsilon));
  }
  return r;
}

absl::StatusOr<std::optional<PrivacyRecord>> FindPrivacyRecord(
    const SafetensorsMetadata& metadata) {
  for (const auto& [k, v] : metadata) {
    if (k != kMetadataKey) continue;
    absl::StatusOr<PrivacyRecord> r = DecodePrivacyRecord(v);
    if (!r.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata '", kMetadataKey, "': ", r.status().message()));
    }
    return std::optional<PrivacyRecord>(*std::move(r));
  }
  return std::optional<PrivacyRecord>();
}

void SetPrivacyRecord(const PrivacyRecord& record, SafetensorsMetadata* metadata) {
  const std::string text = EncodePrivacyRecord(record);
  for (auto& [k, v] : *metadata) {
    if (k == kMetadataKey) {
      v = text;
      return;
    }
  }
  metadata->emplace_back(kMetadataKey, text);
}

std::string DescribePrivacy(const std::optional<PrivacyRecord>& record) {
  if (!record) return "not private";
  const PrivacyRecord& r = *record;
  std::string out = absl::StrFormat("eps=%.2f delta=%g", r.epsilon, r.delta);
  if (r.phases.size() == 1) {
    const PrivacyPhase& p = r.phases[0];
    absl::StrAppend(&out, absl::StrFormat(" sigma=%.3g C=%g q=%.3g steps=%d", p.noise_multiplier,
                                          p.clip_norm, p.sample_rate, p.steps));
  } else {
    int64_t steps = 0;
    for (const PrivacyPhase& p : r.phases) steps += p.steps;
    absl::StrAppend(&out, absl::StrFormat(" phases=%d steps=%d", r.phases.size(), steps));
  }
  absl::StrAppend(&out, " examples=", r.examples, " accountant=", r.accountant);
  return out;
}

}  // namespace wxp::dp
