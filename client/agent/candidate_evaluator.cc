#include "client/agent/candidate_evaluator.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/agent/external_command.h"
#include "client/agent/position_files.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace wxp::agent {

namespace {

class InProcess : public CandidateEvaluator {
 public:
  explicit InProcess(std::unique_ptr<Evaluator> e) : e_(std::move(e)) {}
  absl::StatusOr<Scores> Evaluate(const Candidate& c) override {
    WXP_ASSIGN_OR_RETURN(std::vector<float> x, LoadFlat(c.position_path, *c.schema));
    return e_->Evaluate({c.particle, c.iteration, x});
  }

 private:
  std::unique_ptr<Evaluator> e_;
};

class External : public CandidateEvaluator {
 public:
  explicit External(ExternalCommandOptions o) : o_(std::move(o)) {}

  absl::StatusOr<Scores> Evaluate(const Candidate& c) override {
    const std::string dir = absl::StrCat(o_.scratch_dir, "/candidate-", c.particle);
    // The harness sees an ordinary PEFT directory with the swarm's adapter_config.json.
    WXP_RETURN_IF_ERROR(WritePeftCandidateDir(
        c.position_path, *c.schema,
        c.adapter_config_json.empty() ? o_.adapter_config_json : c.adapter_config_json, dir));
    std::vector<std::string> argv = o_.argv;
    argv.push_back(dir);
    WXP_ASSIGN_OR_RETURN(std::string out,
                         RunCommand(argv, o_.env, {o_.timeout, o_.kill_grace}, "evaluator"));
    absl::StatusOr<Scores> scores = ParseScoresOutput(out);
    if (!scores.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("`", absl::StrJoin(argv, " "), "`: ", scores.status().message()));
    }
    return scores;
  }

 private:
  ExternalCommandOptions o_;
};

absl::StatusOr<Scores> ParseObject(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("output is not a JSON object");
  }
  auto it = j.find("scores");
  if (it == j.end() || !it->is_object()) {
    return absl::InvalidArgumentError("output has no \"scores\" object");
  }
  Scores scores;
  for (auto& [name, value] : it->items()) {
    if (!value.is_number()) {
      return absl::InvalidArgumentError(absl::StrCat("score \"", name, "\" is not a number"));
    }
    const double v = value.get<double>();
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat("score \"", name, "\" is not finite"));
    }
    scores[name] = v;
  }
  if (scores.empty()) return absl::InvalidArgumentError("output has no scores");
  return scores;
}

}  // namespace

absl::StatusOr<std::vector<float>> CandidateEvaluator::Train(const TrainingRequest&,
                                                             const Candidate&) {
  return absl::UnimplementedError("this evaluator cannot train (no local training)");
}

absl::Status CandidateEvaluator::PrepareTokenMixture(const std::vector<TokenExpertFiles>&,
                                                     TokenCombination) {
  return absl::UnimplementedError(
      "this evaluator scores adapters, not whole models: a token swarm needs one that "
      "combines models per token (builtin_legal_text)");
}

absl::StatusOr<Scores> CandidateEvaluator::EvaluateTokenMixture(int, int, absl::Span<const float>) {
  return absl::FailedPreconditionError("no token-swarm experts are loaded");
}

std::unique_ptr<CandidateEvaluator> InProcessEvaluator(std::unique_ptr<Evaluator> evaluator) {
  return std::make_unique<InProcess>(std::move(evaluator));
}

absl::StatusOr<std::unique_ptr<CandidateEvaluator>> ExternalCommandEvaluator(
    ExternalCommandOptions options) {
  WXP_RETURN_IF_ERROR(
      CheckCommand("the external evaluator", options.argv, options.env, options.timeout));
  WXP_RETURN_IF_ERROR(MakeDirs(options.scratch_dir));
  return std::make_unique<External>(std::move(options));
}

absl::StatusOr<Scores> ParseScoresOutput(const std::string& stdout_text) {
  absl::StatusOr<Scores> whole = ParseObject(stdout_text);
  if (whole.ok()) return whole;
  std::vector<absl::string_view> lines = absl::StrSplit(stdout_text, '\n', absl::SkipWhitespace());
  if (lines.size() > 1) {
    absl::StatusOr<Scores> last = ParseObject(std::string(lines.back()));
    if (last.ok()) return last;
    return last.status();
  }
  if (stdout_text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return absl::InvalidArgumentError("printed nothing on stdout; expected {\"scores\": {...}}");
  }
  return whole.status();
}

}  // namespace wxp::agent
