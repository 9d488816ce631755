// B5 search quality (SPEC 9): on the built-in legal-text task, Model Swarms' best adapter
// beside the best single expert, the composition baselines and a centralised upper bound,
// all scored on the TEST split with 95 % confidence intervals.
//
// Per seed:
//  * experts: one LoRA per firm shard, fine-tuned on that shard only, the way a firm would:
//    until the loss on its own held-out part of the shard (every 10th 192-byte piece) has
//    not improved for --finetune_patience evaluations, one every --finetune_eval_every
//    steps, at most --finetune_max_steps; the best checkpoint is kept
//    (--nofinetune_until_plateau: exactly --finetune_steps). --print_curves prints each
//    expert's curve (steps vs own held-out loss) once, for the first seed;
//  * best single: the expert with the best dev char_acc;
//  * uniform soup; task arithmetic, TIES (d = 0.5), DARE-TIES (d = 0.5): λ from a grid on
//    dev; SLERP (t = 0.5) of the two best experts on dev;
//  * cat / svd product merges: ΔW = Σ λ·s_j·B_j·A_j exactly (rank Σ r_j), or truncated to
//    rank --svd_rank, λ from the same grid on dev;
//  * Model Swarms (common/runner RunSwarm through a ParticleSpace and DecodingEvaluator) in
//    each of --spaces: weights, lora_product, lora_product_svd (a _per_module suffix: one
//    coefficient per expert and module); utility = dev char_acc;
//  * with --local_training=EVERY_K:STEPS:LR:BATCH (SPEC 4.4): "swarm weights+training", the
//    weights swarm with local training between iterations (particle i belongs to firm
//    i mod n, as the server assigns one expert per firm and children round-robin, and
//    trains on that firm's train shard), and "best single +matched steps": each firm's
//    expert trained on its own shard, by the same trainer and settings, for as many extra
//    gradient steps as the swarm spent on that firm's particles, then the best on dev;
//  * central LoRA (bound): one LoRA fine-tuned on the union of the firms' train shards with
//    the experts' total step count as its budget (with plateau stopping on the union of
//    their held-out parts, as the experts): what federation gives up.
// Only dev scores steer any choice; test is read once per final adapter. Each row reports
// the evaluations its search spent and the gradient steps it spent after the experts were
// trained (the bound: its whole budget).
//
// Statistics (bench/paired_bootstrap.h): each row's per-position test outcomes; a paired
// two-level bootstrap (seeds with replacement, then 256-byte blocks of test positions with
// replacement, the same draw for every row) gives each row's mean test char_acc over seeds
// with a 95 % percentile interval, its difference to the best single expert with an
// interval, and the fraction of the gap between best single and the bound it closes.
// The swarm rows' and best expert's dev-test gap is printed beside them.
//
// Honest use: tune on seeds other than the reported ones (--first_seed 101 for tuning;
// report.sh reports seeds 1..5) and never on the second corpus (bench/make_corpus.sh).
//
//   bazel run //bench:legal_quality -- [--seeds 5] [--corpus_dir DIR --firms a,b,c]
#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "bench/b5_common.h"
#include "client/legal/dp_expert.h"
#include "client/legal/evaluator.h"
#include "client/legal/trainer.h"
#include "common/local_trainer.h"
#include "common/lora_decode.h"
#include "common/merge.h"
#include "common/particle_space.h"
#include "common/runner.h"

ABSL_FLAG(bool, shared_init, false,
          "experts share one LoRA A initialisation (vendor-distributed init)");
ABSL_FLAG(std::string, spaces, "weights,lora_product,lora_product_svd",
          "swarm spaces: weights, lora_product, lora_product_svd, and either decoder with the "
          "suffix _per_module (empty: no swarm)");
ABSL_FLAG(int, svd_rank, 0, "rank of the svd merge and space (0 = the experts' rank)");
ABSL_FLAG(std::string, local_training, "",
          "EVERY_K:STEPS:LR:BATCH adds a weights swarm with local training between iterations "
          "and its compute-matched baseline (empty: neither)");
ABSL_FLAG(std::string, dp_epsilon, "inf",
          "experts by DP-SGD (SPEC 12) at each epsilon of this list, a full run each (e.g. "
          "1,4,8,inf; inf: without DP); DP experts train exactly --finetune_steps steps");
ABSL_FLAG(double, dp_delta, 1e-5, "DP delta of the experts");
ABSL_FLAG(double, dp_clip, 1.0, "DP-SGD per-example clipping norm");
ABSL_FLAG(std::string, architecture, "mlp", "model: mlp or transformer (its default sizes)");
// Model sizes: a negative value keeps the architecture's default.
ABSL_FLAG(int, context, -1, "model: bytes of context (the transformer's window)");
ABSL_FLAG(int, embed, -1, "model: embedding (the transformer's model) width");
ABSL_FLAG(int, hidden, -1, "model: hidden width");
ABSL_FLAG(int, rank, -1, "model: LoRA rank");
ABSL_FLAG(double, alpha, -1, "model: LoRA alpha");
ABSL_FLAG(int, pretrain_steps, -1, "model: base steps");
ABSL_FLAG(int, threads, 2,
          "torch intra-op threads (1 for runs side by side on 2 cores; the last digits of the "
          "results depend on it)");
ABSL_FLAG(double, pretrain_lr, -1, "model: base lr");

namespace wxp::legal {
namespace {

using bench::Must;
using bench::Now;

// Scores adapters of any PEFT LoRA layout on the model (rank r experts, rank Σ r product
// merges, rank k SVD merges) over one split.
class Scorer {
 public:
  Scorer(const LegalModel& model, const Segments& segments)
      : model_(model), data_(Must(model.Tokenize(segments), "tokenize")) {
    for (const std::string& s : segments) targets_.insert(targets_.end(), s.begin(), s.end());
  }
  int64_t positions() const { return data_.positions(); }

  absl::StatusOr<LmScores> Score(const Adapter& a) {
    absl::StatusOr<const LoraPlacement*> p = Place(a);
    if (!p.ok()) return p.status();
    return model_.Score(**p, a.values, data_);
  }

  // 1 where the next byte is predicted (the argmax), per position; checked against Score.
  std::vector<uint8_t> Outcomes(const Adapter& a) {
    const LoraPlacement* p = Must(Place(a), "placement");
    PlacedLora placed{p, a.values, 1.0};
    const std::vector<float> logits =
        Must(model_.Logits(absl::MakeConstSpan(&placed, 1), data_, positions()), "logits");
    std::vector<uint8_t> hit(positions());
    int64_t hits = 0;
    for (int64_t i = 0; i < positions(); ++i) {
      const float* row = logits.data() + 256 * i;
      hit[i] = std::max_element(row, row + 256) - row == static_cast<uint8_t>(targets_[i]);
      hits += hit[i];
    }
    const double acc = static_cast<double>(hits) / positions();
    const double expected = Must(Score(a), "score").char_acc;
    if (std::abs(acc - expected) > 1e-3) {  // argmax ties may differ in the last position
      std::fprintf(stderr, "legal_quality: per-position acc %.5f != scored %.5f\n", acc, expected);
    }
    return hit;
  }

 private:
  absl::StatusOr<const LoraPlacement*> Place(const Adapter& a) {
    const std::string key = a.schema.Fingerprint() + a.config_json.value_or("");
    auto it = placements_.find(key);
    if (it == placements_.end()) {
      absl::StatusOr<LoraPlacement> p = model_.PlaceLora(a.schema, a.config_json);
      if (!p.ok()) return p.status();
      it = placements_.emplace(key, *std::move(p)).first;
    }
    return &it->second;
  }

  const LegalModel& model_;
  TokenData data_;
  std::string targets_;
  std::map<std::string, LoraPlacement> placements_;
};

// The swarm's utility: dev scores of decoded candidates.
class DevAdapterEvaluator : public AdapterEvaluator {
 public:
  explicit DevAdapterEvaluator(Scorer& dev) : dev_(dev) {}
  absl::StatusOr<Scores> Evaluate(const AdapterEvaluationRequest& request) override {
    absl::StatusOr<LmScores> s = dev_.Score(*request.adapter);
    if (!s.ok()) return s.status();
    return Scores{{kCharAccComponent, s->char_acc}, {kLossComponent, s->loss}};
  }

 private:
  Scorer& dev_;
};

struct Row {
  std::string method;
  Adapter adapter;
  std::string note;
  int evaluations = 0;  // evaluations the search spent choosing the adapter
  int64_t steps = 0;    // gradient steps spent after the experts were trained
};

// The firms' trainers as one: particle i trains on firm i mod n's shard (the server's
// assignment with one expert per firm); counts the steps spent on each firm.
class FirmTrainers : public LocalTrainer {
 public:
  explicit FirmTrainers(std::vector<std::unique_ptr<LegalTrainer>> firms)
      : firms_(std::move(firms)) {}
  absl::StatusOr<std::vector<float>> Train(const TrainingRequest& r) override {
    return firms_[r.particle % firms_.size()]->Train(r);
  }
  LegalTrainer& firm(size_t i) { return *firms_[i]; }

 private:
  std::vector<std::unique_ptr<LegalTrainer>> firms_;
};

struct Firm {
  std::string name;
  Adapter adapter;
  FineTuneResult stats;
};

// "weights", or a decoder name with an optional "_per_module" suffix (one alpha per expert
// and target module instead of one per expert).
ParticleSpaceOptions SpaceOptions(const std::string& name, int svd_rank) {
  ParticleSpaceOptions o;
  if (name == "weights") return o;
  o.kind = SpaceKind::kExpertCoefficients;
  absl::string_view decoder = name;
  o.per_module = absl::ConsumeSuffix(&decoder, "_per_module");
  o.decoder = Must(ParseLoraDecoder(std::string(decoder)), "--spaces");
  if (o.decoder == LoraDecoder::kLoraProductSvd) o.svd_rank = svd_rank;
  return o;
}

// One full B5 run, the experts trained with DP at `dp` if given (the central bound and
// local training stay non-private).
int Run(const std::optional<DpBudget>& dp) {
  const double t_start = Now();
  const LocalTrainingParams local_training =
      Must(ParseLocalTraining(absl::GetFlag(FLAGS_local_training)), "--local_training");
  LegalOptions options;
  options.corpus_dir = absl::GetFlag(FLAGS_corpus_dir);
  options.work_dir = absl::GetFlag(FLAGS_work_dir);
  options.log = &std::cout;
  options.model = ModelConfig::Defaults(
      Must(ParseArchitecture(absl::GetFlag(FLAGS_architecture)), "--architecture"));
  auto set = [](auto flag, auto* field) {
    if (flag >= 0) *field = flag;
  };
  set(absl::GetFlag(FLAGS_context), &options.model.context);
  set(absl::GetFlag(FLAGS_embed), &options.model.embed);
  set(absl::GetFlag(FLAGS_hidden), &options.model.hidden);
  set(absl::GetFlag(FLAGS_rank), &options.model.lora_rank);
  set(absl::GetFlag(FLAGS_alpha), &options.model.lora_alpha);
  set(absl::GetFlag(FLAGS_pretrain_steps), &options.model.pretrain_steps);
  set(absl::GetFlag(FLAGS_pretrain_lr), &options.model.pretrain_lr);
  set(absl::GetFlag(FLAGS_threads), &options.model.threads);
  LegalSetup setup = Must(LoadLegalSetup(options), "setup");
  const LegalModel& model = *setup.model;
  const Schema& schema = model.lora_schema();
  const std::vector<int64_t> sizes = schema.tensor_sizes();
  Scorer dev(model, Must(setup.corpus.Get(Split::kDev), "dev split"));
  Scorer test(model, Must(setup.corpus.Get(Split::kTest), "test split"));
  const std::vector<std::string> firms = absl::StrSplit(absl::GetFlag(FLAGS_firms), ',');
  const std::vector<std::string> spaces =
      absl::StrSplit(absl::GetFlag(FLAGS_spaces), ',', absl::SkipEmpty());
  std::vector<std::string> swarm_names = spaces;
  if (local_training.enabled()) swarm_names.push_back("weights+training");
  const int svd_rank =
      absl::GetFlag(FLAGS_svd_rank) > 0 ? absl::GetFlag(FLAGS_svd_rank) : model.config().lora_rank;
  std::printf(
      "B5 legal quality: corpus %s, %d firms (%s), LoRA r=%d (%lld params), dev %lld "
      "bytes, test %lld bytes, torch threads %d%s\n",
      setup.corpus.dir().c_str(), static_cast<int>(firms.size()),
      absl::GetFlag(FLAGS_firms).c_str(), model.config().lora_rank,
      static_cast<long long>(schema.total_params()), static_cast<long long>(dev.positions()),
      static_cast<long long>(test.positions()), model.config().threads,
      local_training.enabled()
          ? absl::StrCat(", local training ", absl::GetFlag(FLAGS_local_training)).c_str()
          : "");
  if (model.pretrained_now()) std::printf("pretrain: %.1f s\n", model.pretrain_seconds());
  const Adapter base = MakeLegalAdapter(model, std::vector<float>(schema.total_params(), 0.f));
  {
    const double t0 = Now();
    LmScores s = Must(dev.Score(base), "dev");
    std::printf("one dev evaluation: %.3f s; base dev char_acc %.4f loss %.4f\n", Now() - t0,
                s.char_acc, s.loss);
  }

  const UtilityFunction utility =
      Must(UtilityFunction::Create({{kCharAccComponent, true, 1.0}}), "utility");
  bench::SeedTable table;
  std::map<std::string, int> swarm_wins;
  const int n_seeds = absl::GetFlag(FLAGS_seeds), first_seed = absl::GetFlag(FLAGS_first_seed);
  double finetune_seconds = 0, swarm_seconds = 0;
  for (int seed = first_seed; seed < first_seed + n_seeds; ++seed) {
    std::printf("\n== seed %d ==\n", seed);
    std::vector<Firm> experts;
    int total_steps = 0;
    for (size_t i = 0; i < firms.size(); ++i) {
      const uint64_t init = absl::GetFlag(FLAGS_shared_init) ? 7919 * seed : 1000 * seed + i;
      LegalExpert e = bench::FineTuneExpert(model, setup.corpus, firms[i], firms[i],
                                            1000 * seed + i, init, seed == first_seed, dp);
      finetune_seconds += e.stats.seconds;
      total_steps += e.stats.steps_run;
      experts.push_back({firms[i], std::move(e.adapter), std::move(e.stats)});
    }
    // The bound: every firm's train shard in one place, the experts' total budget.
    Segments union_train;
    for (const std::string& f : firms) {
      for (std::string& s : Must(setup.corpus.Get(Split::kTrain, f), "train")) {
        union_train.push_back(std::move(s));
      }
    }
    FineTuneOptions central_ft =
        bench::ExpertOptions(1000 * seed + 999, 1000 * seed + 999, total_steps);
    central_ft.steps = total_steps;
    FineTuneResult central = Must(model.FineTune(union_train, central_ft), "central fine-tune");
    finetune_seconds += central.seconds;

    std::vector<Row> rows;
    rows.push_back({"base (no adapter)", base, ""});
    std::vector<double> expert_dev;
    std::vector<absl::Span<const float>> spans;
    std::vector<const Adapter*> ptrs;
    for (const Firm& f : experts) {
      rows.push_back({"expert " + f.name, f.adapter, ""});
      expert_dev.push_back(Must(dev.Score(f.adapter), "dev").char_acc);
      spans.push_back(f.adapter.values);
      ptrs.push_back(&f.adapter);
    }
    const size_t best = Must(BestSingle(expert_dev), "best single");
    rows.push_back({"best single (dev)", experts[best].adapter, firms[best]});
    auto flat = [&](std::vector<float> x) { return MakeLegalAdapter(model, std::move(x)); };
    rows.push_back({"uniform soup", flat(Must(LinearMerge(spans, {}), "soup")), ""});
    // λ tuned on dev (the usual way these merges are tuned).
    auto tuned = [&](const std::string& method,
                     const std::function<absl::StatusOr<Adapter>(double)>& merge) {
      double best_dev = -1, best_lambda = 0;
      Adapter best_a;
      for (double lambda : {0.2, 0.4, 0.6, 0.8, 1.0}) {
        Adapter a = Must(merge(lambda), method.c_str());
        const double d = Must(dev.Score(a), "dev").char_acc;
        if (d > best_dev) best_dev = d, best_lambda = lambda, best_a = std::move(a);
      }
      rows.push_back({method, std::move(best_a), absl::StrFormat("lambda=%.1f", best_lambda)});
    };
    auto flat_merge = [&](absl::StatusOr<std::vector<float>> x) -> absl::StatusOr<Adapter> {
      if (!x.ok()) return x.status();
      return flat(*std::move(x));
    };
    tuned("task arithmetic", [&](double l) { return flat_merge(TaskArithmetic(spans, {}, l)); });
    tuned("TIES (d=0.5)",
          [&](double l) { return flat_merge(TiesMerge(spans, {}, 0.5, sizes, {}, l)); });
    tuned("DARE-TIES (d=0.5)",
          [&](double l) { return flat_merge(DareTiesMerge(spans, {}, 0.5, seed, {}, l)); });
    std::vector<size_t> order(experts.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return expert_dev[a] > expert_dev[b]; });
    if (order.size() >= 2) {
      rows.push_back({"SLERP top-2 (t=0.5)",
                      flat(Must(Slerp(spans[order[0]], spans[order[1]], 0.5, sizes), "slerp")),
                      firms[order[0]] + "+" + firms[order[1]]});
    }
    auto product = [&](LoraDecoder decoder, int64_t k) {
      return [&, decoder, k](double l) {
        return DecodeLora(ptrs, LoraCoefficients::PerExpert(std::vector<double>(ptrs.size(), l)),
                          {decoder, k});
      };
    };
    tuned("cat product merge", product(LoraDecoder::kLoraProduct, 0));
    tuned(absl::StrFormat("svd product merge (k=%d)", svd_rank),
          product(LoraDecoder::kLoraProductSvd, svd_rank));

    // One swarm over `space_name`, with local training when `trainer` is given.
    auto swarm = [&](const std::string& space_name, const std::string& label,
                     LocalTrainer* trainer) {
      std::vector<Adapter> pool;
      for (const Firm& f : experts) pool.push_back(f.adapter);
      std::unique_ptr<ParticleSpace> space =
          Must(ParticleSpace::Create(std::move(pool), SpaceOptions(space_name, svd_rank)), "space");
      DevAdapterEvaluator inner(dev);
      DecodingEvaluator evaluator(*space, inner);
      RunnerOptions ro = bench::SwarmOptions(seed);
      ro.crossover_groups = space->CrossoverGroups();
      ro.space = space->options().kind;
      if (trainer != nullptr) ro.local_training = local_training, ro.trainer = trainer;
      const double t0 = Now();
      RunResult run = Must(RunSwarm(space->InitialPositions(), utility, evaluator, ro), "swarm");
      const double seconds = Now() - t0;
      swarm_seconds += seconds;
      const int evals = bench::SwarmEvaluations(run);
      int trained = 0, failed = 0;
      for (const IterationSummary& s : run.history)
        trained += s.trained, failed += s.training_failed;
      Row row{
          "swarm " + label, Must(space->Decode(run.best), "decode"),
          absl::StrFormat("%s, %d iters, %.1f s, %s", space->Describe(),
                          run.history.back().iteration, seconds, TerminationName(run.termination)),
          evals};
      if (trainer != nullptr) {
        row.steps = static_cast<int64_t>(trained + failed) * local_training.steps;
        absl::StrAppend(&row.note,
                        absl::StrFormat(", %d trainings (%d failed)", trained + failed, failed));
      }
      rows.push_back(std::move(row));
    };
    for (const std::string& space_name : spaces) swarm(space_name, space_name, nullptr);
    if (local_training.enabled()) {
      std::vector<std::unique_ptr<LegalTrainer>> firm_trainers;
      for (const std::string& f : firms) {
        firm_trainers.push_back(Must(MakeLegalTrainer(setup.model, setup.corpus, f), "trainer"));
      }
      FirmTrainers trainers(std::move(firm_trainers));
      swarm("weights", "weights+training", &trainers);
      // Compute-matched: each expert trained on by its own firm's trainer for the steps
      // the swarm spent on that firm, one continuous run, then the best on dev.
      double best_dev = -1;
      Row matched{"best single +matched steps", {}, "", 0, 0};
      for (size_t i = 0; i < experts.size(); ++i) {
        const int64_t spent = trainers.firm(i).steps_run();
        std::vector<float> x = experts[i].adapter.values;
        if (spent > 0) {
          TrainingRequest r;
          r.particle = static_cast<int>(i);
          r.seed = 1000 * seed + 500 + i;
          r.steps = static_cast<int>(spent);
          r.learning_rate = local_training.learning_rate;
          r.batch = local_training.batch;
          r.params = experts[i].adapter.values;
          x = Must(trainers.firm(i).Train(r), "matched fine-tune");
        }
        Adapter a = MakeLegalAdapter(model, std::move(x));
        const double d = Must(dev.Score(a), "dev").char_acc;
        matched.steps += spent;
        ++matched.evaluations;
        absl::StrAppend(&matched.note, i ? " " : "", firms[i], "+", spent);
        if (d > best_dev) best_dev = d, matched.adapter = std::move(a);
      }
      rows.push_back(std::move(matched));
    }
    rows.push_back(
        {"central LoRA (bound)", MakeLegalAdapter(model, central.lora),
         absl::StrFormat("%d steps (best %d) on the union", central.steps_run, central.best_step),
         0, central.steps_run});

    table.PrintHeader();
    std::map<std::string, double> test_acc;
    for (const Row& r : rows) {
      bench::SeedRow s{r.method};
      s.dev_acc = Must(dev.Score(r.adapter), "dev").char_acc;
      s.outcomes = test.Outcomes(r.adapter);
      s.test_acc = Must(test.Score(r.adapter), "test").char_acc;
      s.evaluations = r.evaluations;
      s.steps = r.steps;
      s.note = r.note;
      test_acc[r.method] = s.test_acc;
      table.Add(std::move(s));
    }
    // A swarm "beats every baseline" if it beats every composition method and best single
    // (not the other swarms, the individual experts behind best single, or the bound).
    for (const std::string& space_name : swarm_names) {
      bool beats_all = true;
      for (const Row& r : rows) {
        if (r.method.rfind("swarm ", 0) == 0 || r.method.rfind("expert ", 0) == 0 ||
            r.method == "base (no adapter)" || r.method == "central LoRA (bound)") {
          continue;
        }
        beats_all = beats_all && test_acc["swarm " + space_name] > test_acc[r.method];
      }
      swarm_wins[space_name] += beats_all;
    }
  }

  bench::Must(table.PrintSummary(first_seed, n_seeds, "best single (dev)", "central LoRA (bound)"),
              "bootstrap");
  for (const std::string& space_name : swarm_names) {
    std::printf("swarm %s beats every baseline on the test split in %d of %d seeds\n",
                space_name.c_str(), swarm_wins[space_name], n_seeds);
  }
  std::printf("wall time %.1f s (fine-tunes %.1f s, swarms %.1f s)\n", Now() - t_start,
              finetune_seconds, swarm_seconds);
  return 0;
}

int Main() {
  for (absl::string_view e : absl::StrSplit(absl::GetFlag(FLAGS_dp_epsilon), ',')) {
    std::optional<DpBudget> dp;
    if (e != "inf") {
      dp = DpBudget{0, absl::GetFlag(FLAGS_dp_delta), absl::GetFlag(FLAGS_dp_clip)};
      if (!absl::SimpleAtod(e, &dp->epsilon)) {
        std::fprintf(stderr, "legal_quality: --dp_epsilon: not a number: %s\n",
                     std::string(e).c_str());
        return 2;
      }
    }
    std::printf("\n==== experts at epsilon %s%s ====\n", std::string(e).c_str(),
                dp ? absl::StrFormat(" (delta %g, C %g)", dp->delta, dp->clip_norm).c_str() : "");
    if (int code = Run(dp); code != 0) return code;
  }
  return 0;
}

}  // namespace
}  // namespace wxp::legal

int main(int argc, char** argv) { return wxp::bench::RunMain(argc, argv, wxp::legal::Main); }
