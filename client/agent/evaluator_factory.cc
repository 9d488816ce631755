#include "client/agent/evaluator_factory.h"

#include <map>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/agent/position_files.h"
#include "client/agent/train_command.h"
#include "client/legal/evaluator.h"
#include "client/legal/mixture_evaluator.h"
#include "client/legal/trainer.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/synthetic.h"

namespace wxp::agent {
namespace {

// The synthetic utility needs the swarm's size, known only once the first candidate
// arrives; the optimum is built then and kept.
class Synthetic : public CandidateEvaluator {
 public:
  explicit Synthetic(wxp::v1::SyntheticEvaluator c) : c_(std::move(c)) {}
  absl::StatusOr<Scores> Evaluate(const Candidate& cand) override {
    WXP_RETURN_IF_ERROR(Init(*cand.schema));
    WXP_ASSIGN_OR_RETURN(std::vector<float> x, LoadFlat(cand.position_path, *cand.schema));
    return eval_->Evaluate({cand.particle, cand.iteration, x});
  }
  // Local training pulls toward the same hidden optimum (SyntheticTrainer).
  bool CanTrain() const override { return true; }
  absl::StatusOr<std::vector<float>> Train(const TrainingRequest& request,
                                           const Candidate& position) override {
    WXP_RETURN_IF_ERROR(Init(*position.schema));
    return trainer_->Train(request);
  }

 private:
  absl::Status Init(const Schema& schema) {
    if (eval_) return absl::OkStatus();
    std::vector<float> optimum;
    if (!c_.optimum_path().empty()) {
      WXP_ASSIGN_OR_RETURN(Adapter a, LoadAdapter(c_.optimum_path()));
      optimum = std::move(a.values);
    } else {
      optimum = MakeRandomExperts(1, schema.total_params(), c_.optimum_seed())[0];
    }
    trainer_ = std::make_unique<SyntheticTrainer>(optimum);
    eval_ = std::make_unique<SyntheticEvaluator>(std::move(optimum), c_.noise(), c_.optimum_seed());
    return absl::OkStatus();
  }

  wxp::v1::SyntheticEvaluator c_;
  std::unique_ptr<SyntheticEvaluator> eval_;
  std::unique_ptr<SyntheticTrainer> trainer_;
};

// The built-in legal model is loaded (its base pretrained if missing) at the first
// candidate, when the swarm's schema is known; a schema that is not a LoRA of the model is
// then a clear failure. Which base (architecture and sizes) is the one the firm's experts
// name in their adapter_config.json, found in base_dir (legal::ResolveLegalBase). A candidate that
// brings its own adapter_config.json (a decoded coefficient-space position, of rank sum r_j) is
// placed by that config, so any rank on the model's modules scores; the evaluator is rebuilt only
// if the layout changes.
class BuiltinLegal : public CandidateEvaluator {
 public:
  explicit BuiltinLegal(legal::LegalOptions o) : o_(std::move(o)) {}
  absl::StatusOr<Scores> Evaluate(const Candidate& cand) override {
    if (!eval_ || !(schema_ == *cand.schema) || config_ != cand.adapter_config_json) {
      std::optional<std::string> config;
      if (!cand.adapter_config_json.empty()) config = cand.adapter_config_json;
      WXP_ASSIGN_OR_RETURN(eval_, legal::MakeLegalEvaluator(o_, *cand.schema, config));
      schema_ = *cand.schema;
      config_ = cand.adapter_config_json;
    }
    WXP_ASSIGN_OR_RETURN(std::vector<float> x, LoadFlat(cand.position_path, *cand.schema));
    return eval_->Evaluate({cand.particle, cand.iteration, x});
  }
  // Local training is next-byte prediction on the firm's own train shard (LegalTrainer),
  // so it needs builtin_legal_text.shard. The model and shard are loaded at the first
  // training; positions must be the model's own LoRA.
  bool CanTrain() const override { return !o_.shard.empty(); }
  absl::StatusOr<std::vector<float>> Train(const TrainingRequest& request,
                                           const Candidate& position) override {
    if (!trainer_) {
      const Schema& schema = *position.schema;
      if (o_.shard.empty()) {
        return absl::FailedPreconditionError(
            "local training needs builtin_legal_text.shard (the firm's own train data)");
      }
      WXP_ASSIGN_OR_RETURN(legal::LegalSetup setup, legal::LoadLegalSetup(o_));
      // Names and shapes only: the transport dtype may differ, maths is fp32 anyway.
      const auto& want = setup.model->lora_schema().tensors();
      bool same = want.size() == schema.tensors().size();
      for (size_t i = 0; same && i < want.size(); ++i) {
        same =
            want[i].name == schema.tensors()[i].name && want[i].shape == schema.tensors()[i].shape;
      }
      if (!same) {
        return absl::InvalidArgumentError(
            "local training needs positions in the built-in model's own LoRA schema");
      }
      WXP_ASSIGN_OR_RETURN(trainer_, legal::MakeLegalTrainer(setup.model, setup.corpus, o_.shard));
    }
    return trainer_->Train(request);
  }
  // Token swarms: every expert on its own base model (received as blobs), combined on this
  // firm's held-out split; the experts' forward passes run once, here.
  absl::Status PrepareTokenMixture(const std::vector<TokenExpertFiles>& experts,
                                   TokenCombination combination) override {
    WXP_ASSIGN_OR_RETURN(legal::Corpus corpus, legal::Corpus::Load(o_.corpus_dir));
    WXP_ASSIGN_OR_RETURN(legal::Split split,
                         legal::ParseSplit(o_.split.empty() ? "dev" : o_.split));
    std::vector<legal::MixtureExpert> loaded;
    for (size_t j = 0; j < experts.size(); ++j) {
      absl::StatusOr<legal::MixtureExpert> e = legal::LoadMixtureExpert(
          {experts[j].base_model_path, experts[j].adapter_path, experts[j].adapter_config_json},
          corpus, o_.work_dir, o_.model.threads);
      if (!e.ok()) {
        return absl::Status(e.status().code(),
                            absl::StrCat("token swarm expert ", j, ": ", e.status().message()));
      }
      loaded.push_back(*std::move(e));
    }
    WXP_ASSIGN_OR_RETURN(mixture_,
                         legal::MixtureEvaluator::Create(loaded, corpus, split, combination));
    return absl::OkStatus();
  }
  absl::StatusOr<Scores> EvaluateTokenMixture(int particle, int iteration,
                                              absl::Span<const float> alpha) override {
    if (!mixture_) return CandidateEvaluator::EvaluateTokenMixture(particle, iteration, alpha);
    return mixture_->Evaluate({particle, iteration, alpha});
  }

 private:
  std::unique_ptr<legal::MixtureEvaluator> mixture_;
  legal::LegalOptions o_;
  std::unique_ptr<legal::LegalTrainer> trainer_;
  std::unique_ptr<Evaluator> eval_;
  Schema schema_;       // the layout eval_ was built for
  std::string config_;  // and the config it placed it with
};

// Candidates carry the first expert's PEFT config, as the exported adapter does.
std::string FirstExpertConfig(const wxp::v1::AgentConfig& config) {
  if (config.expert_paths_size() == 0) return "";
  absl::StatusOr<std::string> cfg = ReadFile(config.expert_paths(0) + "/" + kPeftConfigFile);
  return cfg.ok() ? *cfg : "";
}

absl::StatusOr<std::unique_ptr<CandidateEvaluator>> MakeEvaluatorOnly(
    const wxp::v1::AgentConfig& config, const std::string& work_dir) {
  switch (config.evaluator_case()) {
    case wxp::v1::AgentConfig::kExternalCommand: {
      const auto& e = config.external_command();
      ExternalCommandOptions o;
      o.argv.assign(e.argv().begin(), e.argv().end());
      if (e.timeout_seconds() < 0) {
        return absl::InvalidArgumentError("external_command.timeout_seconds must be > 0");
      }
      o.timeout = absl::Seconds(e.timeout_seconds() > 0 ? e.timeout_seconds() : 600);
      o.env = std::map<std::string, std::string>(e.env().begin(), e.env().end());
      o.scratch_dir = work_dir + "/scratch";
      o.adapter_config_json = FirstExpertConfig(config);
      return ExternalCommandEvaluator(std::move(o));
    }
    case wxp::v1::AgentConfig::kSynthetic:
      if (config.synthetic().noise() < 0) {
        return absl::InvalidArgumentError("synthetic.noise must be >= 0");
      }
      return std::unique_ptr<CandidateEvaluator>(std::make_unique<Synthetic>(config.synthetic()));
    case wxp::v1::AgentConfig::kBuiltinLegalText: {
      const auto& c = config.builtin_legal_text();
      legal::LegalOptions o;
      o.corpus_dir = c.corpus_dir();
      o.shard = c.shard();
      o.split = c.split();
      o.work_dir = c.base_dir().empty() ? work_dir + "/legal" : c.base_dir();
      if (std::string first = FirstExpertConfig(config); !first.empty()) {
        o.base_from_adapter_config = std::move(first);
      }
      if (o.split != "" && o.split != "dev" && o.split != "test") {
        return absl::InvalidArgumentError(
            absl::StrCat("builtin_legal_text.split must be dev or test, not '", o.split, "'"));
      }
      return std::unique_ptr<CandidateEvaluator>(std::make_unique<BuiltinLegal>(std::move(o)));
    }
    default:
      return absl::InvalidArgumentError(
          "no evaluator configured: set one of external_command, builtin_legal_text, "
          "synthetic");
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<CandidateEvaluator>> MakeCandidateEvaluator(
    const wxp::v1::AgentConfig& config, const std::string& work_dir) {
  WXP_ASSIGN_OR_RETURN(std::unique_ptr<CandidateEvaluator> evaluator,
                       MakeEvaluatorOnly(config, work_dir));
  if (!config.has_train_command()) return evaluator;
  const auto& t = config.train_command();
  if (t.timeout_seconds() < 0) {
    return absl::InvalidArgumentError("train_command.timeout_seconds must be > 0");
  }
  TrainCommandOptions o;
  o.argv.assign(t.argv().begin(), t.argv().end());
  o.timeout = absl::Seconds(t.timeout_seconds() > 0 ? t.timeout_seconds() : 600);
  o.env = std::map<std::string, std::string>(t.env().begin(), t.env().end());
  o.scratch_dir = work_dir + "/scratch";
  o.adapter_config_json = FirstExpertConfig(config);
  return WithTrainCommand(std::move(evaluator), std::move(o));
}

}  // namespace wxp::agent
