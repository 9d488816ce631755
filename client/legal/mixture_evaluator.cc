#include "client/legal/mixture_evaluator.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "client/legal/evaluator.h"
#include "common/file_util.h"
#include "common/model_description.h"
#include "common/rng.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace wxp::legal {
namespace {

constexpr int kVocab = 256;

absl::Status ExpertError(size_t j, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("token swarm expert ", j, ": ", s.message()));
}

// Where expert j's adapter goes in its model: the model's own placement for the base alone,
// else the adapter placed by its own adapter_config.json, after checking it names the model.
absl::StatusOr<LoraPlacement> PlaceExpert(const MixtureExpert& e, size_t j) {
  if (e.model == nullptr) return ExpertError(j, absl::InvalidArgumentError("no model"));
  if (e.adapter.values.empty()) return e.model->own_placement();
  absl::Status base = CheckLegalBase(*e.model, e.adapter.config_json);
  if (!base.ok()) return ExpertError(j, base);
  absl::StatusOr<LoraPlacement> placed =
      e.model->PlaceLora(e.adapter.schema, e.adapter.config_json);
  if (!placed.ok()) return ExpertError(j, placed.status());
  return placed;
}

}  // namespace

absl::StatusOr<MixtureExpert> LoadMixtureExpert(const MixtureExpertFiles& files,
                                                const Corpus& corpus, const std::string& work_dir,
                                                int threads) {
  WXP_ASSIGN_OR_RETURN(ModelConfig config, ReadLegalBaseConfig(files.base_model_path));
  config.threads = threads;
  WXP_RETURN_IF_ERROR(CheckLegalBaseFile(files.base_model_path, config, corpus.fingerprint()));
  const std::string cached = LegalBasePath(work_dir, LegalBaseName(config, corpus.fingerprint()));
  std::error_code ec;
  if (!std::filesystem::exists(cached, ec)) {
    WXP_RETURN_IF_ERROR(MakeDirs(work_dir.empty() ? "." : work_dir));
    WXP_ASSIGN_OR_RETURN(std::string bytes, ReadFile(files.base_model_path));
    WXP_RETURN_IF_ERROR(WriteFileAtomically(cached, bytes));
  }
  WXP_ASSIGN_OR_RETURN(std::shared_ptr<const LegalModel> model,
                       LegalModel::LoadOrPretrain(config, corpus, work_dir));
  if (model->pretrained_now()) {
    // The cached file under that name was damaged or stale and LoadOrPretrain replaced it.
    return absl::InternalError(
        absl::StrCat("legal model: ", cached, " did not load as the base model it names"));
  }
  WXP_ASSIGN_OR_RETURN(Adapter adapter, LoadAdapter(files.adapter_path));
  if (!files.adapter_config_json.empty()) adapter.config_json = files.adapter_config_json;
  return MixtureExpert{std::move(model), std::move(adapter)};
}

absl::Status SaveTokenExpertDir(const LegalModel& model, const Adapter& adapter,
                                const std::string& dir) {
  WXP_ASSIGN_OR_RETURN(std::string base, ReadFile(model.base_path()));
  nlohmann::json config =
      nlohmann::json::parse(adapter.config_json.value_or(model.LoraConfigJson()), nullptr, false);
  if (!config.is_object()) {
    return absl::InvalidArgumentError("token expert: adapter_config.json is not a JSON object");
  }
  config[kBaseModelBlobKey] = Sha256Hex(base);
  Adapter with_base = adapter;
  with_base.config_json = config.dump(2);
  WXP_RETURN_IF_ERROR(SaveAdapterDir(with_base, dir));
  return WriteFileAtomically(dir + "/" + kExpertBaseModelFile, base);
}

absl::StatusOr<std::unique_ptr<MixtureEvaluator>> MixtureEvaluator::Create(
    const std::vector<MixtureExpert>& experts, const Corpus& corpus, Split split,
    TokenCombination combination) {
  if (experts.empty()) return absl::InvalidArgumentError("token swarm: no experts");
  std::unique_ptr<MixtureEvaluator> ev(new MixtureEvaluator());
  ev->combination_ = combination;
  for (size_t j = 0; j < experts.size(); ++j) {
    const MixtureExpert& e = experts[j];
    WXP_ASSIGN_OR_RETURN(LoraPlacement placement, PlaceExpert(e, j));
    // Each architecture tokenizes for itself; the positions are the split's bytes for all.
    absl::StatusOr<SplitData> data = LoadSplitData(*e.model, corpus, split);
    if (!data.ok()) return data.status();
    absl::StatusOr<LegalModel::PositionLogProbs> lp =
        e.model->LogProbs(placement, e.adapter.values, data->data);
    if (!lp.ok()) return ExpertError(j, lp.status());
    if (j == 0) {
      ev->targets_ = std::move(lp->targets);
      ev->families_ = std::move(data->families);
      ev->family_ends_ = std::move(data->family_ends);
    } else if (lp->targets != ev->targets_) {
      return ExpertError(j, absl::InternalError("its positions do not line up with expert 0's"));
    }
    ev->log_probs_.push_back(std::move(lp->log_probs));
  }
  return ev;
}

absl::StatusOr<Scores> MixtureEvaluator::Evaluate(const EvaluationRequest& request) {
  return Combine(request.params, nullptr);
}

absl::StatusOr<std::vector<uint8_t>> MixtureEvaluator::Hits(absl::Span<const float> alpha) const {
  std::vector<uint8_t> hits;
  WXP_RETURN_IF_ERROR(Combine(alpha, &hits).status());
  return hits;
}

absl::StatusOr<Scores> MixtureEvaluator::Combine(absl::Span<const float> alpha,
                                                 std::vector<uint8_t>* hits) const {
  if (alpha.size() != log_probs_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("token swarm: alpha has ", alpha.size(),
                                                   " coefficients for ", log_probs_.size(),
                                                   " experts"));
  }
  WXP_ASSIGN_OR_RETURN(std::vector<double> weights, CombinationWeights(combination_, alpha));
  if (hits != nullptr) hits->assign(positions(), 0);
  const int64_t n = positions();
  std::vector<absl::Span<const float>> rows(log_probs_.size());
  std::array<double, kVocab> out;
  double nll = 0;
  int64_t correct = 0;
  std::vector<int64_t> family_correct(families_.size(), 0);
  size_t family = 0;
  for (int64_t t = 0; t < n; ++t) {
    for (size_t j = 0; j < rows.size(); ++j) {
      rows[j] = absl::MakeConstSpan(log_probs_[j].data() + t * kVocab, kVocab);
    }
    absl::Status s = CombineLogProbs(combination_, weights, rows, absl::MakeSpan(out));
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("token swarm: position ", t, ": ", s.message()));
    }
    const int target = targets_[t];
    nll -= out[target];
    // The first maximum, as torch's argmax picks it for a single model.
    const bool hit = std::max_element(out.begin(), out.end()) - out.begin() == target;
    while (family < family_ends_.size() && t >= family_ends_[family]) ++family;
    if (hit) {
      if (hits != nullptr) (*hits)[t] = 1;
      ++correct;
      ++family_correct[family];
    }
  }
  Scores scores{{kCharAccComponent, static_cast<double>(correct) / static_cast<double>(n)},
                {kLossComponent, nll / static_cast<double>(n)}};
  int64_t begin = 0;
  for (size_t f = 0; f < families_.size(); ++f) {
    scores[FamilyCharAccComponent(families_[f])] =
        static_cast<double>(family_correct[f]) / static_cast<double>(family_ends_[f] - begin);
    begin = family_ends_[f];
  }
  return scores;
}

absl::StatusOr<std::string> GenerateText(const std::vector<MixtureExpert>& experts,
                                         TokenCombination combination,
                                         absl::Span<const float> alpha, const std::string& prompt,
                                         const GenerateOptions& options) {
  if (experts.empty()) return absl::InvalidArgumentError("token swarm: no experts");
  if (alpha.size() != experts.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token swarm: alpha has ", alpha.size(), " coefficients for ", experts.size(), " experts"));
  }
  if (options.bytes < 1) return absl::InvalidArgumentError("generate: bytes must be at least 1");
  if (!std::isfinite(options.temperature) || options.temperature < 0) {
    return absl::InvalidArgumentError("generate: temperature must be a finite number >= 0");
  }
  WXP_ASSIGN_OR_RETURN(std::vector<double> weights, CombinationWeights(combination, alpha));
  std::vector<LoraPlacement> placements;
  for (size_t j = 0; j < experts.size(); ++j) {
    WXP_ASSIGN_OR_RETURN(LoraPlacement p, PlaceExpert(experts[j], j));
    placements.push_back(std::move(p));
  }
  CounterRng rng(options.seed, RngStream::kGenerate);
  std::string text = prompt;
  std::vector<std::vector<float>> last(experts.size());
  std::vector<absl::Span<const float>> rows(experts.size());
  std::array<double, kVocab> out;
  for (int step = 0; step < options.bytes; ++step) {
    // The byte after `text` is predicted by the last position of text + one more byte (its
    // value never enters its own prediction).
    const Segments segment = {text + '\0'};
    for (size_t j = 0; j < experts.size(); ++j) {
      const MixtureExpert& e = experts[j];
      absl::StatusOr<TokenData> data = e.model->Tokenize(segment);
      if (!data.ok()) return ExpertError(j, data.status());
      absl::StatusOr<LegalModel::PositionLogProbs> lp =
          e.model->LogProbs(placements[j], e.adapter.values, *data);
      if (!lp.ok()) return ExpertError(j, lp.status());
      last[j].assign(lp->log_probs.end() - kVocab, lp->log_probs.end());
      rows[j] = last[j];
    }
    WXP_RETURN_IF_ERROR(CombineLogProbs(combination, weights, rows, absl::MakeSpan(out)));
    int next = static_cast<int>(std::max_element(out.begin(), out.end()) - out.begin());
    if (options.temperature > 0) {
      // p_i ∝ exp(out_i / T), drawn by inverting the cumulative sum; shifting by the maximum
      // keeps every exponent <= 0.
      std::array<double, kVocab> p;
      const double top = out[next];
      double total = 0;
      for (int i = 0; i < kVocab; ++i)
        total += p[i] = std::exp((out[i] - top) / options.temperature);
      double u = rng.NextUniform() * total;
      for (int i = 0; i < kVocab; ++i) {
        if (p[i] <= 0) continue;
        next = i;
        if ((u -= p[i]) < 0) break;
      }
    }
    text.push_back(static_cast<char>(next));
  }
  return text.substr(prompt.size());
}

}  // namespace wxp::legal
