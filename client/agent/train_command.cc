#include "client/agent/train_command.h"

#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/agent/external_command.h"
#include "client/agent/position_files.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/status_macros.h"

namespace wxp::agent {
namespace {
namespace fs = std::filesystem;

class TrainCommandEvaluator : public CandidateEvaluator {
 public:
  TrainCommandEvaluator(std::unique_ptr<CandidateEvaluator> inner, TrainCommandOptions o)
      : inner_(std::move(inner)), o_(std::move(o)) {}

  absl::StatusOr<Scores> Evaluate(const Candidate& candidate) override {
    return inner_->Evaluate(candidate);
  }
  bool CanTrain() const override { return true; }

  absl::StatusOr<std::vector<float>> Train(const TrainingRequest& request,
                                           const Candidate& position) override {
    const std::string in = absl::StrCat(o_.scratch_dir, "/train-in-", position.particle);
    const std::string out = absl::StrCat(o_.scratch_dir, "/train-out-", position.particle);
    absl::StatusOr<std::vector<float>> trained = Run(request, position, in, out);
    std::error_code ec;
    fs::remove_all(in, ec);
    fs::remove_all(out, ec);
    return trained;
  }

 private:
  absl::StatusOr<std::vector<float>> Run(const TrainingRequest& request, const Candidate& position,
                                         const std::string& in, const std::string& out) {
    const Schema& schema = *position.schema;
    WXP_RETURN_IF_ERROR(WritePeftCandidateDir(position.position_path, schema,
                                              position.adapter_config_json.empty()
                                                  ? o_.adapter_config_json
                                                  : position.adapter_config_json,
                                              in));
    std::error_code ec;
    fs::remove_all(out, ec);  // a stale OUT must not pass for this run's result
    std::map<std::string, std::string> env = o_.env;
    env[kTrainInputEnv] = in;
    env[kTrainOutputEnv] = out;
    env[kTrainStepsEnv] = absl::StrCat(request.steps);
    env[kTrainLearningRateEnv] = absl::StrFormat("%.17g", request.learning_rate);
    env[kTrainBatchEnv] = absl::StrCat(request.batch);
    env[kTrainSeedEnv] = absl::StrCat(request.seed);
    env[kTrainParticleEnv] = absl::StrCat(request.particle);
    env[kTrainIterationEnv] = absl::StrCat(request.iteration);
    if (request.dp_epsilon > 0) {
      env[kTrainDpEpsilonEnv] = absl::StrFormat("%.17g", request.dp_epsilon);
      env[kTrainDpDeltaEnv] = absl::StrFormat("%.17g", request.dp_delta);
      env[kTrainDpClipEnv] = absl::StrFormat("%.17g", request.dp_clip_norm);
      env[kTrainDpMaxStepsEnv] = absl::StrCat(request.dp_max_steps);
    }
    std::vector<std::string> argv = o_.argv;
    argv.push_back(in);
    argv.push_back(out);
    WXP_RETURN_IF_ERROR(RunCommand(argv, env, {o_.timeout, o_.kill_grace}, "trainer").status());

    const std::string what = absl::StrCat("the train command's output ", out);
    const std::string weights = out + "/" + kPeftWeightsFile;
    if (!fs::is_regular_file(weights, ec)) {
      return absl::NotFoundError(absl::StrCat(what, " holds no ", kPeftWeightsFile));
    }
    absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(weights);
    if (!file.ok()) {
      return absl::Status(file.status().code(), absl::StrCat(what, ": ", file.status().message()));
    }
    std::vector<TensorSpec> specs;
    for (const TensorView& t : file->tensors()) specs.push_back({t.name, t.dtype, t.shape});
    absl::StatusOr<Schema> got = Schema::Create(std::move(specs));
    absl::Status same = got.ok() ? got->CheckSame(schema) : got.status();
    if (!same.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is not the input's schema: ", same.message()));
    }
    WXP_ASSIGN_OR_RETURN(std::vector<float> x, LoadFlat(weights, schema));
    for (size_t i = 0; i < x.size(); ++i) {
      if (!std::isfinite(x[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " holds a non-finite value (", x[i], ") at flat index ", i));
      }
    }
    return x;
  }

  std::unique_ptr<CandidateEvaluator> inner_;
  TrainCommandOptions o_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CandidateEvaluator>> WithTrainCommand(
    std::unique_ptr<CandidateEvaluator> evaluator, TrainCommandOptions options) {
  if (evaluator == nullptr) return absl::InvalidArgumentError("no evaluator to wrap");
  WXP_RETURN_IF_ERROR(CheckCommand("train_command", options.argv, options.env, options.timeout));
  WXP_RETURN_IF_ERROR(MakeDirs(options.scratch_dir));
  return std::unique_ptr<CandidateEvaluator>(
      std::make_unique<TrainCommandEvaluator>(std::move(evaluator), std::move(options)));
}

}  // namespace wxp::agent
