#include "client/agent/particle_state.h"

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace wxp::agent {

using json = nlohmann::json;

std::string ParticleStateToJson(const ParticleState& s) {
  json j = {
      {"particle", s.id}, {"iteration", s.iteration},     {"x", s.x},       {"v", s.v},
      {"p", s.p},         {"toward_best", s.toward_best}, {"done", s.done}, {"uploads", s.uploads}};
  if (s.pending) {
    const PendingMove& m = *s.pending;
    j["pending"] = {{"iteration", m.iteration},
                    {"x", m.x},
                    {"v", m.v},
                    {"evaluated", m.evaluated},
                    {"scores", m.scores},
                    {"failed", m.failed},
                    {"reason", m.reason},
                    {"seconds", m.seconds}};
    if (m.training_failed) {
      j["pending"]["training_failed"] = true;
      j["pending"]["training_reason"] = m.training_reason;
    }
  }
  return j.dump(1);
}

absl::StatusOr<ParticleState> ParticleStateFromJson(const std::string& text,
                                                    const std::string& path) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(absl::StrCat(path, " is not a particle state (not JSON)"));
  }
  // nlohmann reports missing or mistyped fields by exception; it stops here.
  try {
    ParticleState s;
    s.id = j.at("particle").get<int>();
    s.iteration = j.at("iteration").get<int>();
    s.x = j.at("x").get<std::string>();
    s.v = j.at("v").get<std::string>();
    s.p = j.at("p").get<std::string>();
    s.toward_best = j.at("toward_best").get<bool>();
    s.done = j.at("done").get<bool>();
    s.uploads = j.at("uploads").get<std::vector<std::string>>();
    if (j.contains("pending")) {
      const json& m = j["pending"];
      PendingMove p;
      p.iteration = m.at("iteration").get<int>();
      p.x = m.at("x").get<std::string>();
      p.v = m.at("v").get<std::string>();
      p.evaluated = m.at("evaluated").get<bool>();
      p.scores = m.at("scores").get<Scores>();
      p.failed = m.at("failed").get<bool>();
      p.reason = m.at("reason").get<std::string>();
      p.seconds = m.at("seconds").get<double>();
      // Absent in states written before local training could fail visibly.
      p.training_failed = m.value("training_failed", false);
      p.training_reason = m.value("training_reason", std::string());
      s.pending = std::move(p);
    }
    return s;
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat(path, " is not a particle state: ", e.what()));
  }
}

absl::Status SaveParticleState(const std::string& path, const ParticleState& state) {
  return WriteFileAtomically(path, ParticleStateToJson(state));
}

absl::StatusOr<ParticleState> LoadParticleState(const std::string& path) {
  WXP_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParticleStateFromJson(text, path);
}

}  // namespace wxp::agent
