#include "client/legal/evaluator.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace wxp::legal {

std::string FamilyCharAccComponent(const std::string& shard) {
  return absl::StrCat(kCharAccComponent, "/", shard);
}

absl::StatusOr<Scores> LegalEvaluator::Evaluate(const EvaluationRequest& request) {
  WXP_ASSIGN_OR_RETURN(
      LmScores s, model_->Score(placement_, request.params, split_->data, split_->family_ends));
  Scores out{{kCharAccComponent, s.char_acc}, {kLossComponent, s.loss}};
  int64_t begin = 0;
  for (size_t j = 0; j < split_->families.size(); ++j) {
    const int64_t end = split_->family_ends[j];
    out[FamilyCharAccComponent(split_->families[j])] =
        static_cast<double>(s.part_correct[j]) / static_cast<double>(end - begin);
    begin = end;
  }
  return out;
}

namespace {

// base_model_name_or_path of `config_json` if it names a built-in base, else "".
std::string NamedBase(const std::optional<std::string>& config_json) {
  if (!config_json) return "";
  absl::StatusOr<LoraConfig> c = ParseLoraConfig(*config_json);
  if (!c.ok() || !IsLegalBaseName(c->base_model_name_or_path)) return "";
  return c->base_model_name_or_path;
}

const char* ArchitectureOfName(const std::string& base_name) {
  return absl::StrContains(base_name, "-transformer-") ? "transformer" : "mlp";
}

}  // namespace

absl::StatusOr<ModelConfig> ResolveLegalBase(const LegalOptions& options, const Corpus& corpus) {
  const std::string named = NamedBase(options.base_from_adapter_config);
  if (named.empty() || LegalBaseName(options.model, corpus.fingerprint()) == named) {
    return options.model;
  }
  const std::string path = LegalBasePath(options.work_dir, named);
  if (absl::StatusOr<ModelConfig> c = ReadLegalBaseConfig(path);
      c.ok() || c.status().code() != absl::StatusCode::kNotFound) {
    if (c.ok()) c->threads = options.model.threads;
    return c;
  }
  for (Architecture a : {Architecture::kMlp, Architecture::kTransformer}) {
    ModelConfig c = ModelConfig::Defaults(a);
    c.threads = options.model.threads;
    if (LegalBaseName(c, corpus.fingerprint()) == named) return c;
  }
  return absl::NotFoundError(absl::StrCat(
      "legal model: the adapters name base model ", named, " (", ArchitectureOfName(named),
      "), which is not in ", path, " and is not a default configuration on corpus ", corpus.dir(),
      ": put the base model they were fine-tuned from there (wxpctl legal pretrain "
      "--architecture=",
      ArchitectureOfName(named), " --work_dir ... writes it)"));
}

absl::Status CheckLegalBase(const LegalModel& model,
                            const std::optional<std::string>& adapter_config_json) {
  const std::string named = NamedBase(adapter_config_json);
  if (named.empty() || named == model.base_model_name()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "legal model: the adapter was fine-tuned from base model ", named, " (",
      ArchitectureOfName(named), "), not from this one, ", model.base_model_name(), " (",
      ArchitectureName(model.config().architecture),
      "): use the architecture, sizes, corpus and base model directory it was fine-tuned with"));
}

absl::StatusOr<LegalSetup> LoadLegalSetup(const LegalOptions& options) {
  WXP_ASSIGN_OR_RETURN(Corpus corpus, Corpus::Load(options.corpus_dir));
  WXP_ASSIGN_OR_RETURN(ModelConfig config, ResolveLegalBase(options, corpus));
  WXP_ASSIGN_OR_RETURN(std::shared_ptr<const LegalModel> model,
                       LegalModel::LoadOrPretrain(config, corpus, options.work_dir, options.log));
  WXP_RETURN_IF_ERROR(CheckLegalBase(*model, options.base_from_adapter_config));
  return LegalSetup{std::move(corpus), std::move(model)};
}

absl::StatusOr<SplitData> LoadSplitData(const LegalModel& model, const Corpus& corpus,
                                        Split split) {
  if (split != Split::kDev && split != Split::kTest) {
    return absl::InvalidArgumentError(absl::StrCat(
        "legal evaluator: scores the held-out dev or test split, not '", SplitName(split), "'"));
  }
  // Corpus::Get of a mixed split is its shards' parts in this order; tokenizing makes one
  // position per byte, so each family's positions are its bytes.
  Segments all;
  std::vector<std::string> families;
  std::vector<int64_t> ends;
  int64_t bytes = 0;
  for (const std::string& shard : corpus.ShardNames()) {
    WXP_ASSIGN_OR_RETURN(Segments part, corpus.GetForShard(split, shard));
    for (std::string& segment : part) {
      bytes += static_cast<int64_t>(segment.size());
      all.push_back(std::move(segment));
    }
    if (bytes > (ends.empty() ? 0 : ends.back())) {
      families.push_back(shard);
      ends.push_back(bytes);
    }
  }
  WXP_ASSIGN_OR_RETURN(TokenData data, model.Tokenize(all));
  if (data.positions() == 0) {
    return absl::InvalidArgumentError(absl::StrCat("legal evaluator: the ", SplitName(split),
                                                   " split of ", corpus.dir(), " is empty"));
  }
  if (data.positions() != bytes) {
    return absl::InternalError("legal evaluator: tokenizing did not give one position per byte");
  }
  return SplitData{std::move(data), std::move(families), std::move(ends)};
}

absl::StatusOr<std::unique_ptr<LegalEvaluator>> MakeLegalEvaluator(
    std::shared_ptr<const LegalModel> model, const Corpus& corpus, Split split) {
  WXP_ASSIGN_OR_RETURN(SplitData data, LoadSplitData(*model, corpus, split));
  return std::make_unique<LegalEvaluator>(std::move(model), std::move(data));
}

absl::StatusOr<std::unique_ptr<Evaluator>> MakeLegalEvaluator(
    const LegalOptions& options, const Schema& schema,
    const std::optional<std::string>& adapter_config_json) {
  WXP_ASSIGN_OR_RETURN(Split split, ParseSplit(options.split));
  WXP_ASSIGN_OR_RETURN(LegalSetup setup, LoadLegalSetup(options));
  WXP_RETURN_IF_ERROR(CheckLegalBase(*setup.model, adapter_config_json));
  absl::StatusOr<LoraPlacement> placement = setup.model->PlaceLora(schema, adapter_config_json);
  if (!placement.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("legal evaluator: the swarm's schema is not a LoRA of this model: ",
                     placement.status().message()));
  }
  WXP_ASSIGN_OR_RETURN(SplitData data, LoadSplitData(*setup.model, setup.corpus, split));
  return std::unique_ptr<Evaluator>(std::make_unique<LegalEvaluator>(
      std::move(setup.model), std::move(data), *std::move(placement)));
}

absl::StatusOr<Schema> LegalLoraSchema(const LegalOptions& options) {
  WXP_ASSIGN_OR_RETURN(LegalSetup setup, LoadLegalSetup(options));
  return setup.model->lora_schema();
}

Adapter MakeLegalAdapter(const LegalModel& model, std::vector<float> values) {
  Adapter a;
  a.schema = model.lora_schema();
  a.values = std::move(values);
  a.metadata = {{"format", "pt"}};
  a.config_json = model.LoraConfigJson();
  return a;
}

absl::StatusOr<LegalExpert> FineTuneLegalExpert(const LegalModel& model, const Corpus& corpus,
                                                const std::string& shard,
                                                const FineTuneOptions& fine_tune) {
  WXP_ASSIGN_OR_RETURN(Segments train, corpus.Get(Split::kTrain, shard));
  WXP_ASSIGN_OR_RETURN(FineTuneResult r, model.FineTune(train, fine_tune));
  LegalExpert e;
  e.adapter = MakeLegalAdapter(model, r.lora);
  e.stats = std::move(r);
  return e;
}

absl::StatusOr<LegalExpert> FineTuneLegalExpert(const LegalOptions& options,
                                                const FineTuneOptions& fine_tune) {
  if (options.shard.empty()) {
    return absl::InvalidArgumentError("legal fine-tune: no shard given");
  }
  WXP_ASSIGN_OR_RETURN(LegalSetup setup, LoadLegalSetup(options));
  return FineTuneLegalExpert(*setup.model, setup.corpus, options.shard, fine_tune);
}

}  // namespace wxp::legal
