// Dynamic utility as a scenario (SPEC 4.2, 4.4), on the built-in legal-text task: when the
// utility weights move from one objective to another while a swarm runs, how fast does the
// swarm reach the new objective, against a new swarm started from scratch under it?
//
// Per seed, the firms' experts are fine-tuned as B5 (bench/legal_quality) does it. Then for
// each particle space in --spaces and each target family F in --targets:
//  * dynamic: a swarm under objective A (dev char_acc of the mix of every family) whose
//    weights move, at the start of iteration --switch_at, to objective B (dev char_acc/F,
//    F's part of the dev split alone) with RunnerOptions::utility_changes: the re-rank a
//    server does on `wxpctl weights set` (every evaluation re-weighted from its stored
//    scores, p_i, g and g_w re-chosen, nothing re-evaluated), then the search goes on;
//  * fresh: a new swarm over the same experts and seed under B from the start, allowed as
//    many iterations as the dynamic run has left after its switch (same patience).
// The bar is the best expert's B-utility: the best dev char_acc/F among the experts as the
// swarm scores them (its initial positions). Both swarms hold the experts themselves, so
// either matches the bar at once: "reaching" it means exceeding it, the first g under B
// strictly above it. Reported: the evaluations and iterations under B until then (dynamic:
// counted from the switch, 0 if the re-ranked g already exceeds it; fresh: from its initial
// evaluation, which counts as iteration 0), and the final g under B. A run that never
// exceeds the bar reports its whole budget under B, marked '>' (a lower bound). Only the
// dev split is read: the scenario is about the search, not about generalisation.
//
// Per-seed rows only; bench/seed_summary.py --retarget OUTPUT gives the means over seeds
// with Student-t 95 % intervals and the paired dynamic - fresh differences.
//
//   bazel run -c opt //bench:legal_retarget -- [--seeds 5] [--targets GPL,MPL]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/legal/evaluator.h"
#include "common/lora_decode.h"
#include "common/particle_space.h"
#include "common/runner.h"

ABSL_FLAG(int, seeds, 5, "number of seeds");
ABSL_FLAG(int, first_seed, 1, "seeds run first_seed .. first_seed + seeds - 1");
ABSL_FLAG(std::string, work_dir, "/tmp/wxp-legal-bench", "base model cache");
ABSL_FLAG(std::string, corpus_dir, "", "corpus (default /usr/share/common-licenses)");
ABSL_FLAG(std::string, firms, "GPL,LGPL,GFDL,MPL,Apache", "one expert per shard");
ABSL_FLAG(std::string, targets, "", "families objective B may point at (empty: every firm's)");
ABSL_FLAG(std::string, spaces, "weights,lora_product",
          "swarm spaces: weights, lora_product, lora_product_svd (suffix _per_module allowed)");
ABSL_FLAG(int, switch_at, 5, "the iteration at whose start the weights move from A to B");
ABSL_FLAG(int, max_iterations, 30, "dynamic swarm's hard stop (fresh: what is left after it)");
ABSL_FLAG(int, patience, 8, "swarm patience (both swarms)");
ABSL_FLAG(int, pool_size, 0, "swarm particles (0 = 2 x experts)");
ABSL_FLAG(int, finetune_eval_every, 100, "experts: steps between held-out evaluations");
ABSL_FLAG(int, finetune_patience, 5, "experts: evaluations without improvement before stopping");
ABSL_FLAG(int, finetune_max_steps, 6000, "experts: most steps");
ABSL_FLAG(int, threads, 1, "torch intra-op threads (results depend on it)");
ABSL_FLAG(bool, verbose, false, "per-iteration swarm progress");

namespace wxp::legal {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename T>
T Must(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::fprintf(stderr, "legal_retarget: %s: %s\n", what, v.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(v);
}

// The built-in evaluator (every family's component) for decoded candidates of any PEFT
// LoRA layout: one LegalEvaluator per layout, made on first sight.
class FamilyAdapterEvaluator : public AdapterEvaluator {
 public:
  FamilyAdapterEvaluator(std::shared_ptr<const LegalModel> model, const Corpus& corpus)
      : model_(std::move(model)), corpus_(corpus) {}
  absl::StatusOr<Scores> Evaluate(const AdapterEvaluationRequest& r) override {
    const Adapter& a = *r.adapter;
    const std::string key = a.schema.Fingerprint() + a.config_json.value_or("");
    auto it = by_layout_.find(key);
    if (it == by_layout_.end()) {
      absl::StatusOr<LoraPlacement> placement = model_->PlaceLora(a.schema, a.config_json);
      if (!placement.ok()) return placement.status();
      absl::StatusOr<SplitData> dev = LoadSplitData(*model_, corpus_, Split::kDev);
      if (!dev.ok()) return dev.status();
      it = by_layout_
               .emplace(key, std::make_unique<LegalEvaluator>(model_, *std::move(dev),
                                                              *std::move(placement)))
               .first;
    }
    return it->second->Evaluate({r.particle, r.iteration, a.values});
  }

 private:
  std::shared_ptr<const LegalModel> model_;
  const Corpus& corpus_;
  std::map<std::string, std::unique_ptr<LegalEvaluator>> by_layout_;
};

ParticleSpaceOptions SpaceOptions(const std::string& name) {
  ParticleSpaceOptions o;
  if (name == "weights") return o;
  o.kind = SpaceKind::kExpertCoefficients;
  absl::string_view decoder = name;
  o.per_module = absl::ConsumeSuffix(&decoder, "_per_module");
  o.decoder = Must(ParseLoraDecoder(std::string(decoder)), "--spaces");
  if (o.decoder == LoraDecoder::kLoraProductSvd) o.svd_rank = ModelConfig().lora_rank;
  return o;
}

// How a run did under objective B: evaluations and iterations under B until g first
// exceeded the bar (or the whole budget, `reached` false), and its final g under B.
struct Reach {
  int evaluations = 0;
  int iterations = 0;
  bool reached = false;
  double final_g = 0;
  std::string termination;
};

std::string Count(const Reach& r, int value) { return absl::StrCat(r.reached ? "" : ">", value); }

// Counting from history entry `from` (the first under B); `at_start` is g under B before
// that entry's evaluations (the dynamic run's re-ranked g), if known.
Reach Measure(const RunResult& run, size_t from, double bar, std::optional<double> at_start) {
  Reach r;
  r.final_g = run.best_utility;
  r.termination = TerminationName(run.termination);
  if (at_start && *at_start > bar) {
    r.reached = true;
    return r;
  }
  for (size_t k = from; k < run.history.size(); ++k) {
    r.evaluations += run.history[k].evaluated;
    r.iterations = static_cast<int>(k - from) + (at_start ? 1 : 0);
    if (run.history[k].global_best_utility > bar) {
      r.reached = true;
      return r;
    }
  }
  return r;
}

int Main() {
  const double t_start = Now();
  LegalOptions options;
  options.corpus_dir = absl::GetFlag(FLAGS_corpus_dir);
  options.work_dir = absl::GetFlag(FLAGS_work_dir);
  options.log = &std::cout;
  options.model.threads = absl::GetFlag(FLAGS_threads);
  LegalSetup setup = Must(LoadLegalSetup(options), "setup");
  const std::vector<std::string> firms = absl::StrSplit(absl::GetFlag(FLAGS_firms), ',');
  std::vector<std::string> targets =
      absl::StrSplit(absl::GetFlag(FLAGS_targets), ',', absl::SkipEmpty());
  if (targets.empty()) targets = firms;
  const std::vector<std::string> spaces =
      absl::StrSplit(absl::GetFlag(FLAGS_spaces), ',', absl::SkipEmpty());
  const int switch_at = absl::GetFlag(FLAGS_switch_at);
  const int max_iterations = absl::GetFlag(FLAGS_max_iterations);
  if (switch_at < 1 || switch_at > max_iterations) {
    std::fprintf(stderr, "legal_retarget: --switch_at must be in [1, --max_iterations]\n");
    return 2;
  }
  // Every objective is a weighting of the same declared components.
  std::vector<UtilityComponent> components = {{kCharAccComponent, true, 1.0, 0.0, 1.0}};
  for (const std::string& f : targets) {
    components.push_back({FamilyCharAccComponent(f), true, 0.0, 0.0, 1.0});
  }
  const UtilityFunction objective_a = Must(UtilityFunction::Create(components), "utility A");
  auto weights_b = [&](const std::string& f) {
    return std::map<std::string, double>{{kCharAccComponent, 0.0}, {FamilyCharAccComponent(f), 1}};
  };
  std::printf(
      "dynamic utility, legal task: corpus %s, %d firms (%s); objective A = dev char_acc (mix), "
      "B = dev char_acc/<target>; switch at the start of iteration %d of at most %d, patience "
      "%d; fresh swarm under B: at most %d iterations; torch threads %d\n",
      setup.corpus.dir().c_str(), static_cast<int>(firms.size()),
      absl::GetFlag(FLAGS_firms).c_str(), switch_at, max_iterations, absl::GetFlag(FLAGS_patience),
      max_iterations - switch_at + 1, setup.model->config().threads);
  if (setup.model->pretrained_now()) {
    std::printf("pretrain: %.1f s\n", setup.model->pretrain_seconds());
  }

  double finetune_seconds = 0, swarm_seconds = 0;
  const int first_seed = absl::GetFlag(FLAGS_first_seed);
  for (int seed = first_seed; seed < first_seed + absl::GetFlag(FLAGS_seeds); ++seed) {
    std::printf("\n== retarget seed %d ==\n", seed);
    std::vector<Adapter> experts;
    for (size_t i = 0; i < firms.size(); ++i) {
      FineTuneOptions ft;  // as B5's experts (legal_quality's defaults)
      ft.seed = 1000 * seed + i;
      ft.init_seed = 1000 * seed + i;
      ft.steps = absl::GetFlag(FLAGS_finetune_max_steps);
      ft.eval_every = absl::GetFlag(FLAGS_finetune_eval_every);
      ft.patience = absl::GetFlag(FLAGS_finetune_patience);
      LegalExpert e = Must(FineTuneLegalExpert(*setup.model, setup.corpus, firms[i], ft), "expert");
      finetune_seconds += e.stats.seconds;
      std::printf("  expert %-8s %.1f s, %d steps (best %d)\n", firms[i].c_str(), e.stats.seconds,
                  e.stats.steps_run, e.stats.best_step);
      experts.push_back(std::move(e.adapter));
    }
    std::printf("  %-14s %-8s %7s | %9s %6s %5s %7s %-14s | %6s %5s %7s %-14s\n", "space", "target",
                "bar", "dyn@switch", "evals", "iters", "final", "termination", "evals", "iters",
                "final", "termination");
    for (const std::string& space_name : spaces) {
      std::unique_ptr<ParticleSpace> space =
          Must(ParticleSpace::Create(experts, SpaceOptions(space_name)), "space");
      FamilyAdapterEvaluator inner(setup.model, setup.corpus);
      DecodingEvaluator evaluator(*space, inner);
      const std::vector<std::vector<float>> initial = space->InitialPositions();
      std::vector<Scores> expert_scores;
      for (size_t j = 0; j < initial.size(); ++j) {
        expert_scores.push_back(
            Must(evaluator.Evaluate({static_cast<int>(j), 0, initial[j]}), "expert score"));
      }
      RunnerOptions ro;
      ro.params.seed = seed;
      ro.crossover_groups = space->CrossoverGroups();
      ro.space = space->options().kind;
      ro.params.pool_size = absl::GetFlag(FLAGS_pool_size);
      ro.params.patience = absl::GetFlag(FLAGS_patience);
      if (absl::GetFlag(FLAGS_verbose)) {
        ro.on_iteration = [](const IterationSummary& s) {
          std::printf("    iter %2d  weights v%d  g %.4f  mean %.4f\n", s.iteration,
                      s.utility_version, s.global_best_utility, s.mean_utility);
        };
      }
      for (const std::string& target : targets) {
        double bar = -1;
        for (const Scores& s : expert_scores) {
          bar = std::max(bar, s.at(FamilyCharAccComponent(target)));
        }
        const double t0 = Now();
        RunnerOptions dyn = ro;
        dyn.params.max_iterations = max_iterations;
        dyn.utility_changes = {{switch_at, weights_b(target)}};
        const RunResult d = Must(RunSwarm(initial, objective_a, evaluator, dyn), "dynamic swarm");
        RunnerOptions fresh = ro;
        fresh.params.max_iterations = max_iterations - switch_at + 1;
        const UtilityFunction objective_b =
            Must(objective_a.WithWeights(weights_b(target)), "utility B");
        const RunResult f = Must(RunSwarm(initial, objective_b, evaluator, fresh), "fresh swarm");
        swarm_seconds += Now() - t0;
        const Reach fr = Measure(f, 0, bar, std::nullopt);
        if (d.utility_changes.empty()) {  // the run ended under A before the switch
          std::printf("  %-14s %-8s %7.4f | %9s (ended under A at iteration %d, %s)\n",
                      space_name.c_str(), target.c_str(), bar, "-", d.history.back().iteration,
                      TerminationName(d.termination).c_str());
          continue;
        }
        const double at_switch = d.utility_changes[0].global_best_utility;
        const Reach dr = Measure(d, switch_at, bar, at_switch);
        std::printf("  %-14s %-8s %7.4f | %9.4f %6s %5s %7.4f %-14s | %6s %5s %7.4f %-14s\n",
                    space_name.c_str(), target.c_str(), bar, at_switch,
                    Count(dr, dr.evaluations).c_str(), Count(dr, dr.iterations).c_str(), dr.final_g,
                    dr.termination.c_str(), Count(fr, fr.evaluations).c_str(),
                    Count(fr, fr.iterations).c_str(), fr.final_g, fr.termination.c_str());
      }
    }
  }
  std::printf(
      "\nwall time %.1f s (fine-tunes %.1f s, swarms %.1f s); summary over seeds: "
      "bench/seed_summary.py --retarget <this output>\n",
      Now() - t_start, finetune_seconds, swarm_seconds);
  return 0;
}

}  // namespace
}  // namespace wxp::legal

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows when piped to a file
  absl::ParseCommandLine(argc, argv);
  return wxp::legal::Main();
}
