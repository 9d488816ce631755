// B5-T (SPEC 4.5 and 9): token swarms on the built-in legal-text task, over experts that are
// whole models of different architectures, beside the best single model and the ensembles a
// firm could build without a swarm, all scored on the TEST split with 95 % confidence
// intervals.
//
// Base models: the vendor's pretrained MLP and transformer (ModelConfig::Defaults of each),
// pretrained once per corpus and cached in --work_dir as legal_quality caches its base, so
// every seed shares them; only the experts' fine-tunes and the searches depend on the seed.
//
// Per seed:
//  * experts: firm i's expert is its architecture's base (--architectures, taken in turn:
//    firms alternate between the MLP and the transformer by default) plus a LoRA fine-tuned
//    on that firm's shard only, exactly as legal_quality fine-tunes (plateau stopping on the
//    firm's own held-out part, the same --finetune_* flags); a whole model per firm;
//  * best single: the expert with the best dev char_acc (n dev evaluations);
//  * uniform ensembles: MIXTURE with equal weights (p = mean of the experts' p), and
//    LOG_LINEAR with α_j = 1/n (the renormalised geometric mean); nothing tuned;
//  * best pair (dev): every pair of experts, α = (w, 1 − w) for w in 0.1 .. 0.9, under both
//    combinations, the best dev char_acc (the note says which pair, w and combination won);
//  * token swarms, one per --combinations entry: common/runner RunSwarm over α in a
//    TOKEN_MIXTURE ParticleSpace from the experts' unit vectors, scored by MixtureEvaluator
//    on dev, utility = dev char_acc, the swarm hyperparameters legal_quality's swarms use
//    (the same flags and defaults).
// Every row's test figure is its α under its combination on the test split; each row reports
// the dev evaluations its choice spent.
//
// Wire bytes: a token swarm's particle-iteration exchanges α vectors only (GetTargets gives
// g, g_w and p_i, the Report carries the new x: 4 vectors of n fp32), against a position of
// the weights space, which is a whole adapter (that space can only hold experts of one
// architecture, so it is given per architecture); both computed from the sizes, before
// protobuf and HTTP/2 framing (B6, bench/wire_bench, measures the framing).
//
// Statistics (bench/paired_bootstrap.h): a paired two-level bootstrap over seeds and 256-byte
// blocks of test positions gives each row's mean test char_acc with a 95 % interval and its
// difference to the best single model with an interval.
//
// Honest use: as legal_quality, tune on seeds other than the reported ones (--first_seed 101)
// and never on the second corpus (bench/make_corpus.sh); only dev scores steer any choice.
//
//   bazel run //bench:token_quality -- [--seeds 5] [--corpus_dir DIR --firms a,b,c]
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/b5_common.h"
#include "client/legal/evaluator.h"
#include "client/legal/mixture_evaluator.h"
#include "common/particle_space.h"
#include "common/runner.h"
#include "common/token_combination.h"

ABSL_FLAG(std::string, architectures, "mlp,transformer",
          "firm i's expert has architecture i mod k of this list (each at its default size)");
ABSL_FLAG(std::string, combinations, "mixture,log_linear", "the token swarms' combinations");
ABSL_FLAG(int, threads, 2, "torch intra-op threads");

namespace wxp::legal {
namespace {

using bench::Must;
using bench::Now;

constexpr TokenCombination kBoth[] = {TokenCombination::kMixture, TokenCombination::kLogLinear};

// A row before scoring: α under one combination.
struct Row {
  std::string method;
  TokenCombination combination;
  std::vector<float> alpha;
  int evaluations = 0;
  std::string note;
};

// One seed's dev and test evaluators for both combinations over the same experts.
class Evaluators {
 public:
  Evaluators(const std::vector<MixtureExpert>& experts, const Corpus& corpus) {
    for (TokenCombination c : kBoth) {
      dev_[c] = Must(MixtureEvaluator::Create(experts, corpus, Split::kDev, c), "dev evaluator");
      test_[c] = Must(MixtureEvaluator::Create(experts, corpus, Split::kTest, c), "test evaluator");
    }
  }
  MixtureEvaluator& dev(TokenCombination c) { return *dev_.at(c); }
  double DevAcc(TokenCombination c, const std::vector<float>& alpha) {
    return Must(dev(c).Evaluate({0, 0, alpha}), "dev").at(kCharAccComponent);
  }
  bench::SeedRow Score(const Row& r) {
    bench::SeedRow s{r.method};
    s.dev_acc = DevAcc(r.combination, r.alpha);
    s.outcomes = Must(test_.at(r.combination)->Hits(r.alpha), "test");
    int64_t hits = 0;
    for (uint8_t h : s.outcomes) hits += h;
    s.test_acc = static_cast<double>(hits) / static_cast<double>(s.outcomes.size());
    s.evaluations = r.evaluations;
    s.note = r.note;
    return s;
  }

 private:
  std::map<TokenCombination, std::unique_ptr<MixtureEvaluator>> dev_, test_;
};

std::vector<float> Unit(size_t n, size_t j) {
  std::vector<float> e(n, 0.f);
  e[j] = 1.f;
  return e;
}

// Payload bytes of one particle-iteration (g, g_w, p_i down, x up) in a token swarm and in
// the weights space of each architecture (fp32 positions).
void PrintWireBytes(size_t n, const std::map<std::string, std::shared_ptr<const LegalModel>>& by) {
  constexpr int kVectors = 4;
  const int64_t alpha = kVectors * static_cast<int64_t>(n) * 4;
  std::printf("wire payload per particle-iteration (%d fp32 positions: g, g_w, p_i down, x up):\n",
              kVectors);
  std::printf("  token swarm: alpha of %zu experts, %lld B\n", n, static_cast<long long>(alpha));
  for (const auto& [name, model] : by) {
    const int64_t params = model->lora_schema().total_params();
    std::printf(
        "  weights space over %s experts (LoRA r=%d, %lld params): %lld B, %.0fx the token "
        "swarm's\n",
        name.c_str(), model->config().lora_rank, static_cast<long long>(params),
        static_cast<long long>(kVectors * params * 4),
        static_cast<double>(kVectors * params * 4) / static_cast<double>(alpha));
  }
}

int Main() {
  const double t_start = Now();
  const std::vector<std::string> firms = absl::StrSplit(absl::GetFlag(FLAGS_firms), ',');
  const std::vector<std::string> arch_names =
      absl::StrSplit(absl::GetFlag(FLAGS_architectures), ',', absl::SkipEmpty());
  std::vector<TokenCombination> combinations;
  for (absl::string_view c :
       absl::StrSplit(absl::GetFlag(FLAGS_combinations), ',', absl::SkipEmpty())) {
    combinations.push_back(Must(ParseTokenCombination(c), "--combinations"));
  }
  if (arch_names.empty() || firms.size() < 2) {
    bench::Fail("flags", absl::InvalidArgumentError("need an architecture and two firms"));
  }
  // The vendor's base models, one per architecture, pretrained once and cached.
  std::map<std::string, std::shared_ptr<const LegalModel>> models;
  std::optional<Corpus> corpus;
  for (const std::string& a : arch_names) {
    if (models.count(a)) continue;
    LegalOptions options;
    options.corpus_dir = absl::GetFlag(FLAGS_corpus_dir);
    options.work_dir = absl::GetFlag(FLAGS_work_dir);
    options.log = &std::cout;
    options.model = ModelConfig::Defaults(Must(ParseArchitecture(a), "--architectures"));
    options.model.threads = absl::GetFlag(FLAGS_threads);
    LegalSetup setup = Must(LoadLegalSetup(options), "setup");
    if (setup.model->pretrained_now()) {
      std::printf("pretrain %s: %.1f s\n", a.c_str(), setup.model->pretrain_seconds());
    }
    models[a] = setup.model;
    if (!corpus) corpus.emplace(std::move(setup.corpus));
  }
  std::printf("B5-T token quality: corpus %s, %zu firms (%s), architectures %s, torch threads %d\n",
              corpus->dir().c_str(), firms.size(), absl::GetFlag(FLAGS_firms).c_str(),
              absl::GetFlag(FLAGS_architectures).c_str(), absl::GetFlag(FLAGS_threads));
  PrintWireBytes(firms.size(), models);

  const UtilityFunction utility =
      Must(UtilityFunction::Create({{kCharAccComponent, true, 1.0}}), "utility");
  bench::SeedTable table;
  std::map<std::string, int> pair_winner;  // the combination of the best pair, per seed
  std::map<std::string, int> swarm_beats_pair;
  const int n_seeds = absl::GetFlag(FLAGS_seeds), first_seed = absl::GetFlag(FLAGS_first_seed);
  double finetune_seconds = 0, log_prob_seconds = 0, swarm_seconds = 0;
  for (int seed = first_seed; seed < first_seed + n_seeds; ++seed) {
    std::printf("\n== seed %d ==\n", seed);
    std::vector<MixtureExpert> experts;
    std::vector<std::string> labels;
    for (size_t i = 0; i < firms.size(); ++i) {
      const std::string& arch = arch_names[i % arch_names.size()];
      labels.push_back(absl::StrCat(firms[i], "/", arch));
      const uint64_t s = 1000 * seed + i;
      LegalExpert e = bench::FineTuneExpert(*models[arch], *corpus, firms[i], labels.back(), s, s,
                                            seed == first_seed);
      finetune_seconds += e.stats.seconds;
      experts.push_back({models[arch], std::move(e.adapter)});
    }
    const size_t n = experts.size();
    const double t_eval = Now();
    Evaluators ev(experts, *corpus);
    log_prob_seconds += Now() - t_eval;
    std::printf("  experts' log-probabilities on dev and test, both combinations: %.1f s\n",
                Now() - t_eval);

    std::vector<Row> rows;
    size_t best = 0;
    double best_dev = -1;
    for (size_t j = 0; j < n; ++j) {
      rows.push_back({"expert " + labels[j], TokenCombination::kMixture, Unit(n, j)});
      const double d = ev.DevAcc(TokenCombination::kMixture, Unit(n, j));
      if (d > best_dev) best_dev = d, best = j;
    }
    rows.push_back({"best single (dev)", TokenCombination::kMixture, Unit(n, best),
                    static_cast<int>(n), labels[best]});
    rows.push_back({"uniform mixture", TokenCombination::kMixture, std::vector<float>(n, 1.f)});
    rows.push_back({"uniform log-linear", TokenCombination::kLogLinear,
                    std::vector<float>(n, 1.f / static_cast<float>(n))});
    Row pair{"best pair (dev)", TokenCombination::kMixture, {}, 0};
    double pair_dev = -1;
    for (TokenCombination c : kBoth) {
      for (size_t i = 0; i < n; ++i) {
        for (size_t j = i + 1; j < n; ++j) {
          for (int k = 1; k <= 9; ++k) {
            std::vector<float> alpha(n, 0.f);
            alpha[i] = 0.1f * k;
            alpha[j] = 1.f - alpha[i];
            const double d = ev.DevAcc(c, alpha);
            ++pair.evaluations;
            if (d > pair_dev) {
              pair_dev = d;
              pair.combination = c;
              pair.alpha = std::move(alpha);
              pair.note = absl::StrFormat("%s %.1f + %s %.1f, %s", labels[i], 0.1 * k, labels[j],
                                          1 - 0.1 * k, TokenCombinationName(c));
            }
          }
        }
      }
    }
    ++pair_winner[TokenCombinationName(pair.combination)];
    rows.push_back(pair);

    for (TokenCombination c : combinations) {
      ParticleSpaceOptions o;
      o.kind = SpaceKind::kTokenMixture;
      o.combination = c;
      std::vector<Adapter> pool;
      for (const MixtureExpert& e : experts) pool.push_back(e.adapter);
      std::unique_ptr<ParticleSpace> space =
          Must(ParticleSpace::Create(std::move(pool), o), "space");
      RunnerOptions ro = bench::SwarmOptions(seed);
      ro.crossover_groups = space->CrossoverGroups();
      ro.space = space->options().kind;
      const double t0 = Now();
      RunResult run = Must(RunSwarm(space->InitialPositions(), utility, ev.dev(c), ro), "swarm");
      const double seconds = Now() - t0;
      swarm_seconds += seconds;
      std::vector<std::string> weights;
      for (double w : Must(CombinationWeights(c, run.best), "weights")) {
        weights.push_back(absl::StrFormat("%.2f", w));
      }
      rows.push_back({"swarm " + TokenCombinationName(c), c, run.best, bench::SwarmEvaluations(run),
                      absl::StrFormat("weights (%s), %d iters, %.1f s, %s",
                                      absl::StrJoin(weights, " "), run.history.back().iteration,
                                      seconds, TerminationName(run.termination))});
    }

    table.PrintHeader();
    std::map<std::string, double> test_acc;
    for (const Row& r : rows) {
      bench::SeedRow s = ev.Score(r);
      test_acc[r.method] = s.test_acc;
      table.Add(std::move(s));
    }
    for (TokenCombination c : combinations) {
      const std::string name = "swarm " + TokenCombinationName(c);
      swarm_beats_pair[name] += test_acc[name] > test_acc["best pair (dev)"] &&
                                test_acc[name] > test_acc["best single (dev)"];
    }
  }

  bench::Must(table.PrintSummary(first_seed, n_seeds, "best single (dev)", std::nullopt),
              "bootstrap");
  std::printf("best pair (dev): the combination that won, in seeds: %s\n",
              absl::StrJoin(pair_winner, ", ", absl::PairFormatter(" ")).c_str());
  for (const auto& [name, wins] : swarm_beats_pair) {
    std::printf("%s beats best single and best pair on the test split in %d of %d seeds\n",
                name.c_str(), wins, n_seeds);
  }
  std::printf(
      "wall time %.1f s (fine-tunes %.1f s, experts' log-probabilities %.1f s, swarms %.1f s)\n",
      Now() - t_start, finetune_seconds, log_prob_seconds, swarm_seconds);
  return 0;
}

}  // namespace
}  // namespace wxp::legal

int main(int argc, char** argv) { return wxp::bench::RunMain(argc, argv, wxp::legal::Main); }
