// `wxpctl legal ...` (flags accept --work_dir and --work-dir alike): the built-in legal-text task
// from the command line — pretrain the base, fine-tune a firm's expert, score an adapter (also
// usable as an external-command evaluator), train a swarm particle (usable as wxp-agent's
// train_command), list the shards.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/admin/command_util.h"
#include "client/admin/tensor_commands.h"
#include "client/legal/dp_expert.h"
#include "client/legal/evaluator.h"
#include "client/legal/mixture_evaluator.h"
#include "client/legal/trainer.h"
#include "common/adapter.h"
#include "common/dp_record.h"
#include "common/file_util.h"
#include "common/local_trainer.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace wxp::admin {
namespace {

using legal::LegalOptions;

const cli::FlagSpec kWorkDir = {"work-dir", "where the base model is cached", false, "."};
const cli::FlagSpec kCorpusDir = {"corpus-dir",
                                  "licence texts (default /usr/share/common-licenses) or a "
                                  "directory of firm sub-directories"};
const cli::FlagSpec kThreads = {"threads", "torch intra-op threads", false, "2"};
const cli::FlagSpec kArchitecture = {
    "architecture", "the built-in model: mlp or transformer (at its default sizes)", false, "mlp"};

constexpr char kLegalHelp[] =
    "usage: wxpctl legal <sub-command> [flags]   (each takes --help)\n"
    "\n"
    "  shards                          the corpus's firm shards and their sizes\n"
    "  pretrain --work_dir D           pretrain (or load) the cached base model\n"
    "                                  (--architecture=mlp|transformer on pretrain, finetune,\n"
    "                                  eval and train; mlp by default)\n"
    "  finetune --work_dir D --shard NAME --out DIR [--steps N --seed S --token-expert]\n"
    "                                  fine-tune a firm's LoRA expert on its shard only\n"
    "                                  (--token-expert: with its base model, for token swarms;\n"
    "                                  --dp-epsilon E --dp-delta D [--dp-clip C]: with DP-SGD,\n"
    "                                  the budget spent recorded in the adapter)\n"
    "  eval --work_dir D --adapter DIR [ADAPTER...] [--split dev|test|dev,test]\n"
    "                                  print {\"scores\": {\"char_acc\", \"loss\", "
    "\"char_acc/<family>\"...}}\n"
    "                                  of an adapter (the mix, and each family alone); with\n"
    "                                  several adapters or splits, one such line each, with\n"
    "                                  \"adapter\" and \"split\" (loads the model once)\n"
    "  train IN OUT --work_dir D --shard NAME [--steps N --learning_rate X --batch B --seed S]\n"
    "                                  train a particle's LoRA as wxp-agent's built-in local\n"
    "                                  training does (a train_command; settings default to\n"
    "                                  the WXP_TRAIN_* variables the agent sets)\n";

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

absl::StatusOr<LegalOptions> CommonOptions(const cli::ParsedArgs& p) {
  LegalOptions o;
  WXP_ASSIGN_OR_RETURN(legal::Architecture arch, legal::ParseArchitecture(p.Get("architecture")));
  o.model = legal::ModelConfig::Defaults(arch);
  o.work_dir = p.Get("work-dir");
  o.corpus_dir = p.Get("corpus-dir");
  absl::StatusOr<int64_t> threads = p.GetInt("threads");
  if (!threads.ok()) return threads.status();
  if (*threads < 1) return absl::InvalidArgumentError("--threads must be >= 1");
  o.model.threads = static_cast<int>(*threads);
  return o;
}

int Shards(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::vector<cli::FlagSpec> flags = {kCorpusDir};
  int code = 0;
  std::optional<cli::ParsedArgs> p =
      ParseOrExit(args, flags, "legal shards", "[flags]", out, err, &code);
  if (!p) return code;
  absl::StatusOr<legal::Corpus> c = legal::Corpus::Load(p->Get("corpus-dir"));
  if (!c.ok()) return Fail(err, c.status());
  out << absl::StrFormat("corpus %s\n%-12s %8s %8s %8s %8s  files\n", c->dir(), "shard", "bytes",
                         "train", "dev", "test");
  for (const std::string& name : c->ShardNames()) {
    auto bytes = [&](legal::Split s) {
      int64_t n = 0;
      const legal::Segments part = *c->GetForShard(s, name);  // a named shard: never fails
      for (const std::string& seg : part) n += seg.size();
      return n;
    };
    std::string files;
    const std::vector<std::string> shard_files = *c->ShardFiles(name);
    for (const std::string& f : shard_files) {
      files += (files.empty() ? "" : " ") + f.substr(f.find_last_of('/') + 1);
    }
    out << absl::StrFormat("%-12s %8d %8d %8d %8d  %s\n", name, *c->ShardBytes(name),
                           bytes(legal::Split::kTrain), bytes(legal::Split::kDev),
                           bytes(legal::Split::kTest), files);
  }
  return kExitOk;
}

int Pretrain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::vector<cli::FlagSpec> flags = {kWorkDir, kCorpusDir, kThreads, kArchitecture};
  int code = 0;
  std::optional<cli::ParsedArgs> p =
      ParseOrExit(args, flags, "legal pretrain", "--work_dir D [flags]", out, err, &code);
  if (!p) return code;
  absl::StatusOr<LegalOptions> o = CommonOptions(*p);
  if (!o.ok()) return UsageError(err, "legal pretrain", std::string(o.status().message()));
  absl::StatusOr<legal::LegalSetup> s = legal::LoadLegalSetup(*o);
  if (!s.ok()) return Fail(err, s.status());
  out << absl::StrFormat("base %s (%s, %s) %s", s->model->base_path(),
                         legal::ArchitectureName(s->model->config().architecture),
                         s->model->base_model_name(),
                         s->model->pretrained_now()
                             ? absl::StrFormat("pretrained in %.1f s", s->model->pretrain_seconds())
                             : std::string("(cached)"))
      << "\n";
  return kExitOk;
}

int Finetune(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::vector<cli::FlagSpec> flags = {
      kWorkDir,
      kCorpusDir,
      kThreads,
      kArchitecture,
      {"shard", "the firm's shard (see wxpctl legal shards)"},
      {"out", "write the expert as a PEFT directory here"},
      {"steps", absl::StrCat("fine-tune steps (default ", legal::FineTuneOptions().steps,
                             "; with --dp-epsilon ", legal::DpRecipe().steps, ")")},
      {"seed", "seed of the batch order and of the LoRA A initialisation", false, "1"},
      {"token-expert",
       "write a token-swarm expert (SPEC 4.5): the config names the base model's blob, and "
       "the base model file goes along",
       true},
      {"batch", absl::StrCat("examples per step (default ", legal::FineTuneOptions().batch,
                             "; with DP the expected batch of Poisson sampling, default ",
                             legal::DpRecipe().batch, ")")},
      {"dp-epsilon",
       "train with DP-SGD (SPEC 12) to this epsilon (with --dp-delta): the noise is "
       "calibrated by an RDP accountant and the budget spent recorded in the adapter"},
      {"dp-delta", "the DP delta, in (0, 1/N) for N training examples (e.g. 1e-5)"},
      {"dp-clip", "DP-SGD's per-example gradient clipping norm C", false, "1"},
  };
  int code = 0;
  std::optional<cli::ParsedArgs> p =
      ParseOrExit(args, flags, "legal finetune", "--work_dir D --shard NAME --out DIR [flags]", out,
                  err, &code);
  if (!p) return code;
  if (!p->Has("shard") || !p->Has("out")) {
    return UsageError(err, "legal finetune", "--shard and --out are required");
  }
  absl::StatusOr<LegalOptions> o = CommonOptions(*p);
  const bool dp = p->Has("dp-epsilon") || p->Has("dp-delta");
  // DP-SGD has its own recipe (legal::DpRecipe): what a flag does not set comes from it.
  const legal::FineTuneOptions defaults = dp ? legal::DpRecipe() : legal::FineTuneOptions();
  absl::StatusOr<int64_t> steps =
      p->Has("steps") ? p->GetInt("steps") : absl::StatusOr<int64_t>(defaults.steps);
  absl::StatusOr<int64_t> batch =
      p->Has("batch") ? p->GetInt("batch") : absl::StatusOr<int64_t>(defaults.batch);
  absl::StatusOr<int64_t> seed = p->GetInt("seed");
  for (const absl::Status& s : {o.status(), steps.status(), seed.status(), batch.status()}) {
    if (!s.ok()) return UsageError(err, "legal finetune", std::string(s.message()));
  }
  legal::DpBudget budget;
  if (dp) {
    if (!p->Has("dp-epsilon") || !p->Has("dp-delta")) {
      return UsageError(err, "legal finetune", "--dp-epsilon and --dp-delta go together");
    }
    absl::StatusOr<double> eps = p->GetDouble("dp-epsilon"), delta = p->GetDouble("dp-delta"),
                           clip = p->GetDouble("dp-clip");
    for (const absl::Status& s : {eps.status(), delta.status(), clip.status()}) {
      if (!s.ok()) return UsageError(err, "legal finetune", std::string(s.message()));
    }
    // The budget's own checks (epsilon > 0, delta in (0, 1/N), C > 0) name the value;
    // those that need no data are made here, before the base model loads.
    budget = {*eps, *delta, *clip};
    if (!(*eps > 0)) {
      return UsageError(err, "legal finetune",
                        absl::StrCat("--dp-epsilon must be > 0, got ", *eps));
    }
    if (!(*delta > 0 && *delta < 1)) {
      return UsageError(err, "legal finetune",
                        absl::StrCat("--dp-delta must be in (0, 1), got ", *delta));
    }
    if (!(*clip > 0)) {
      return UsageError(err, "legal finetune", absl::StrCat("--dp-clip must be > 0, got ", *clip));
    }
  }
  o->shard = p->Get("shard");
  legal::FineTuneOptions ft = defaults;
  ft.steps = static_cast<int>(*steps);
  ft.batch = static_cast<int>(*batch);
  ft.seed = static_cast<uint64_t>(*seed);
  ft.init_seed = ft.seed;
  absl::StatusOr<legal::LegalSetup> setup = legal::LoadLegalSetup(*o);
  if (!setup.ok()) return Fail(err, setup.status());
  absl::StatusOr<legal::LegalExpert> e = absl::UnknownError("unset");
  std::string privacy;
  if (dp) {
    absl::StatusOr<legal::DpLegalExpert> d =
        legal::FineTuneDpLegalExpert(*setup->model, setup->corpus, o->shard, ft, budget);
    if (!d.ok()) return Fail(err, d.status());
    privacy = absl::StrCat("; differential privacy: ", dp::DescribePrivacy(d->record));
    e = std::move(d->expert);
  } else {
    e = legal::FineTuneLegalExpert(*setup->model, setup->corpus, o->shard, ft);
  }
  if (!e.ok()) return Fail(err, e.status());
  absl::Status saved = p->GetBool("token-expert")
                           ? legal::SaveTokenExpertDir(*setup->model, e->adapter, p->Get("out"))
                           : SaveAdapterDir(e->adapter, p->Get("out"));
  if (!saved.ok()) return Fail(err, saved);
  out << absl::StrFormat(
      "expert %s: %d steps in %.1f s, train loss %.4f -> %.4f nats/byte, written to %s%s\n",
      o->shard, ft.steps, e->stats.seconds, e->stats.initial_loss, e->stats.final_loss,
      p->Get("out"), privacy);
  return kExitOk;
}

// Where `adapter` sits in the base model: InvalidArgument, naming `path`, if it is not a LoRA
// of it (another base, another architecture, or no LoRA of this model at all).
absl::StatusOr<legal::LoraPlacement> PlaceAdapter(const legal::LegalModel& model,
                                                  const std::string& path, const Adapter& adapter) {
  absl::Status base = legal::CheckLegalBase(model, adapter.config_json);
  if (!base.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", base.message()));
  absl::StatusOr<legal::LoraPlacement> placement =
      model.PlaceLora(adapter.schema, adapter.config_json);
  if (!placement.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a LoRA of this base model: ", placement.status().message()));
  }
  return placement;
}

int Eval(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::vector<cli::FlagSpec> flags = {
      kWorkDir,
      kCorpusDir,
      kThreads,
      kArchitecture,
      {"adapter", "PEFT directory or .safetensors file to score (more may follow as arguments)"},
      {"split", "dev (the search's utility), test (final reporting), or both: dev,test", false,
       "dev"},
      {"timing", "also print the evaluation time to stderr", true},
  };
  int code = 0;
  std::optional<cli::ParsedArgs> p =
      ParseOrExit(args, flags, "legal eval", "--work_dir D --adapter DIR [ADAPTER...] [flags]", out,
                  err, &code);
  if (!p) return code;
  // One process scores many adapters: the corpus, the base model and each split are loaded
  // once (they cost several times one evaluation).
  std::vector<std::string> paths;
  if (p->Has("adapter")) paths.push_back(p->Get("adapter"));
  paths.insert(paths.end(), p->positional().begin(), p->positional().end());
  if (paths.empty()) return UsageError(err, "legal eval", "--adapter is required");
  std::vector<std::string> splits = absl::StrSplit(p->Get("split"), ',');
  for (const std::string& split : splits) {
    if (split != "dev" && split != "test") {
      return UsageError(
          err, "legal eval",
          absl::StrCat("--split takes dev, test or dev,test; got '", p->Get("split"), "'"));
    }
  }
  absl::StatusOr<LegalOptions> o = CommonOptions(*p);
  if (!o.ok()) return UsageError(err, "legal eval", std::string(o.status().message()));
  absl::StatusOr<legal::LegalSetup> setup = legal::LoadLegalSetup(*o);
  if (!setup.ok()) return Fail(err, setup.status());
  // Every adapter is read and placed (or refused, naming it) before anything is scored.
  std::vector<Adapter> adapters;
  std::vector<legal::LoraPlacement> placements;
  for (const std::string& path : paths) {
    absl::StatusOr<Adapter> a = LoadAdapter(path);
    if (!a.ok()) return Fail(err, a.status());
    absl::StatusOr<legal::LoraPlacement> placement = PlaceAdapter(*setup->model, path, *a);
    if (!placement.ok()) return Fail(err, placement.status());
    adapters.push_back(*std::move(a));
    placements.push_back(*std::move(placement));
  }
  const bool one = paths.size() == 1 && splits.size() == 1;
  for (const std::string& split_name : splits) {
    absl::StatusOr<legal::Split> split = legal::ParseSplit(split_name);
    if (!split.ok()) return Fail(err, split.status());
    absl::StatusOr<legal::SplitData> loaded =
        legal::LoadSplitData(*setup->model, setup->corpus, *split);
    if (!loaded.ok()) return Fail(err, loaded.status());
    auto data = std::make_shared<const legal::SplitData>(*std::move(loaded));
    for (size_t i = 0; i < adapters.size(); ++i) {
      const auto start = std::chrono::steady_clock::now();
      legal::LegalEvaluator evaluator(setup->model, data, placements[i]);
      absl::StatusOr<Scores> scores = evaluator.Evaluate({0, 0, adapters[i].values});
      if (!scores.ok()) {
        return Fail(err, absl::Status(scores.status().code(),
                                      absl::StrCat(paths[i], ": ", scores.status().message())));
      }
      if (p->GetBool("timing")) {
        err << absl::StrFormat("wxpctl: evaluation took %.3f s\n", Since(start));
      }
      // One adapter on one split prints {"scores": ...} as it always has; more print one
      // line each, naming the adapter and the split.
      nlohmann::json j;
      if (!one) {
        j["adapter"] = paths[i];
        j["split"] = split_name;
      }
      j["scores"] = *scores;
      out << j.dump() << "\n";
    }
  }
  return kExitOk;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

// `flag`'s value, else the environment variable `env` (a train_command's WXP_TRAIN_*), else
// "" (not given).
std::string FlagOrEnv(const cli::ParsedArgs& p, const std::string& flag, const char* env) {
  return p.Has(flag) ? p.Get(flag) : Env(env);
}

// What `legal train` needs, with the agent's spellings: flags first, else WXP_TRAIN_*.
struct TrainArgs {
  std::string in, out;
  TrainingRequest request;
};

absl::StatusOr<TrainArgs> ParseTrainArgs(const cli::ParsedArgs& p) {
  TrainArgs t;
  const std::vector<std::string>& pos = p.positional();
  if (pos.size() > 2) return absl::InvalidArgumentError("expected at most IN and OUT");
  t.in = pos.size() > 0 ? pos[0] : Env("WXP_TRAIN_INPUT");
  t.out = pos.size() > 1 ? pos[1] : Env("WXP_TRAIN_OUTPUT");
  if (t.in.empty() || t.out.empty()) {
    return absl::InvalidArgumentError("IN and OUT are required (or WXP_TRAIN_INPUT/OUTPUT)");
  }
  const std::string steps = FlagOrEnv(p, "steps", "WXP_TRAIN_STEPS");
  const std::string lr = FlagOrEnv(p, "learning-rate", "WXP_TRAIN_LEARNING_RATE");
  const std::string batch = FlagOrEnv(p, "batch", "WXP_TRAIN_BATCH");
  const std::string seed = FlagOrEnv(p, "seed", "WXP_TRAIN_SEED");
  TrainingRequest& r = t.request;
  // The seed is the engine's full uint64 (LocalTrainingSeed), not an int64.
  if (!absl::SimpleAtoi(steps, &r.steps) || r.steps < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--steps (or WXP_TRAIN_STEPS) must be a whole number >= 1, got '", steps, "'"));
  }
  if (!absl::SimpleAtod(lr, &r.learning_rate) || !std::isfinite(r.learning_rate) ||
      r.learning_rate <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--learning_rate (or WXP_TRAIN_LEARNING_RATE) must be a number > 0, got '", lr, "'"));
  }
  if (!absl::SimpleAtoi(batch, &r.batch) || r.batch < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--batch (or WXP_TRAIN_BATCH) must be a whole number >= 1, got '", batch, "'"));
  }
  if (!absl::SimpleAtoi(seed, &r.seed)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--seed (or WXP_TRAIN_SEED) must be a whole number >= 0, got '", seed, "'"));
  }
  // DP (a private swarm's local training): all four, or none.
  const std::string eps = FlagOrEnv(p, "dp-epsilon", "WXP_TRAIN_DP_EPSILON");
  const std::string delta = FlagOrEnv(p, "dp-delta", "WXP_TRAIN_DP_DELTA");
  const std::string clip = FlagOrEnv(p, "dp-clip", "WXP_TRAIN_DP_CLIP");
  const std::string max_steps = FlagOrEnv(p, "dp-max-steps", "WXP_TRAIN_DP_MAX_STEPS");
  if (eps.empty() && delta.empty() && clip.empty() && max_steps.empty()) return t;
  if (!absl::SimpleAtod(eps, &r.dp_epsilon) || !std::isfinite(r.dp_epsilon) || r.dp_epsilon <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dp-epsilon (or WXP_TRAIN_DP_EPSILON) must be a finite number > 0, got '", eps, "'"));
  }
  if (!absl::SimpleAtod(delta, &r.dp_delta) || !(r.dp_delta > 0 && r.dp_delta < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dp-delta (or WXP_TRAIN_DP_DELTA) must be in (0, 1), got '", delta, "'"));
  }
  if (!absl::SimpleAtod(clip, &r.dp_clip_norm) || !std::isfinite(r.dp_clip_norm) ||
      r.dp_clip_norm <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dp-clip (or WXP_TRAIN_DP_CLIP) must be a finite number > 0, got '", clip, "'"));
  }
  if (!absl::SimpleAtoi(max_steps, &r.dp_max_steps) || r.dp_max_steps < r.steps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dp-max-steps (or WXP_TRAIN_DP_MAX_STEPS) must be a whole number >= the steps, got '",
        max_steps, "'"));
  }
  return t;
}

// The trainer on --shard's train split (as the agent's built-in trainer) or on the --data
// files' whole text.
absl::StatusOr<std::unique_ptr<legal::LegalTrainer>> MakeTrainer(const legal::LegalSetup& setup,
                                                                 const cli::ParsedArgs& p) {
  if (p.Has("shard")) return legal::MakeLegalTrainer(setup.model, setup.corpus, p.Get("shard"));
  legal::Segments text;
  for (const std::string& f : p.GetAll("data")) {
    WXP_ASSIGN_OR_RETURN(std::string t, ReadFile(f));
    text.push_back(std::move(t));
  }
  WXP_ASSIGN_OR_RETURN(legal::TokenData data, setup.model->Tokenize(text));
  if (data.positions() == 0) return absl::InvalidArgumentError("the --data files hold no text");
  return std::make_unique<legal::LegalTrainer>(setup.model, std::move(data));
}

// A train_command for wxp-agent (SPEC 4.4): trains the LoRA in the PEFT directory IN as
// the agent's built-in legal trainer does (LegalTrainer: same loss, Adam, seeded batch
// order), so the same seed and settings give the same weights, and writes OUT in IN's
// schema (dtypes included) with IN's adapter_config.json.
int Train(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::vector<cli::FlagSpec> flags = {
      kWorkDir,
      kCorpusDir,
      kThreads,
      kArchitecture,
      {"shard", "train on this shard's train split (as wxp-agent's builtin_legal_text.shard)"},
      {"data", "or train on these text files, whole (repeatable, comma-separated)"},
      {"steps", "gradient steps (default $WXP_TRAIN_STEPS)"},
      {"learning-rate", "Adam step size (default $WXP_TRAIN_LEARNING_RATE)"},
      {"batch", "examples per step (default $WXP_TRAIN_BATCH)"},
      {"seed", "batch-order seed, uint64 (default $WXP_TRAIN_SEED)"},
      {"dp-epsilon", "DP-SGD to this epsilon (default $WXP_TRAIN_DP_EPSILON; unset: no DP)"},
      {"dp-delta", "with DP: delta (default $WXP_TRAIN_DP_DELTA)"},
      {"dp-clip", "with DP: per-example clipping norm (default $WXP_TRAIN_DP_CLIP)"},
      {"dp-max-steps",
       "with DP: the steps the budget covers, this training's and all others' of the swarm "
       "(default $WXP_TRAIN_DP_MAX_STEPS)"},
  };
  int code = 0;
  std::optional<cli::ParsedArgs> p = ParseOrExit(
      args, flags, "legal train",
      "IN OUT --work_dir D (--shard NAME | --data FILE...) [--steps N --learning_rate X "
      "--batch B --seed S]\n\nIN and OUT default to $WXP_TRAIN_INPUT and $WXP_TRAIN_OUTPUT, the "
      "settings to $WXP_TRAIN_*: what wxp-agent passes a train_command.",
      out, err, &code);
  if (!p) return code;
  if (p->Has("shard") == p->Has("data")) {
    return UsageError(err, "legal train", "give exactly one of --shard and --data");
  }
  absl::StatusOr<TrainArgs> t = ParseTrainArgs(*p);
  if (!t.ok()) return UsageError(err, "legal train", std::string(t.status().message()));
  absl::StatusOr<LegalOptions> o = CommonOptions(*p);
  if (!o.ok()) return UsageError(err, "legal train", std::string(o.status().message()));
  absl::StatusOr<Adapter> in = LoadAdapter(t->in);
  if (!in.ok()) return Fail(err, in.status());
  absl::StatusOr<legal::LegalSetup> setup = legal::LoadLegalSetup(*o);
  if (!setup.ok()) return Fail(err, setup.status());
  if (absl::Status s = legal::CheckLegalBase(*setup->model, in->config_json); !s.ok()) {
    return Fail(err, s);
  }
  // Names and shapes, as the agent's built-in trainer checks: the transport dtype may differ.
  const std::vector<TensorSpec>& want = setup->model->lora_schema().tensors();
  const std::vector<TensorSpec>& have = in->schema.tensors();
  bool same = want.size() == have.size();
  for (size_t i = 0; same && i < want.size(); ++i) {
    same = want[i].name == have[i].name && want[i].shape == have[i].shape;
  }
  if (!same) {
    return Fail(err, absl::InvalidArgumentError(
                         absl::StrCat(t->in,
                                      " is not a LoRA of the built-in model (its tensors' names or "
                                      "shapes differ from the model's own LoRA schema)")));
  }
  absl::StatusOr<std::unique_ptr<legal::LegalTrainer>> trainer = MakeTrainer(*setup, *p);
  if (!trainer.ok()) return Fail(err, trainer.status());
  t->request.params = in->values;
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::vector<float>> trained = (*trainer)->Train(t->request);
  if (!trained.ok()) return Fail(err, trained.status());
  Adapter result = *std::move(in);
  result.values = *std::move(trained);
  if (absl::Status s = SaveAdapterDir(result, t->out); !s.ok()) return Fail(err, s);
  out << absl::StrFormat("trained %s: %d steps (seed %d) in %.2f s, written to %s\n", t->in,
                         t->request.steps, t->request.seed, Since(start), t->out);
  return kExitOk;
}

}  // namespace

int Legal(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << kLegalHelp;
    return kExitUsage;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    out << kLegalHelp;
    return kExitOk;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "shards") return Shards(rest, out, err);
  if (args[0] == "pretrain") return Pretrain(rest, out, err);
  if (args[0] == "finetune") return Finetune(rest, out, err);
  if (args[0] == "eval") return Eval(rest, out, err);
  if (args[0] == "train") return Train(rest, out, err);
  return UsageError(err, "legal", "unknown sub-command '" + args[0] + "'");
}

}  // namespace wxp::admin
