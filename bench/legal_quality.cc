// B5 search quality (SPEC 9): on the built-in legal-text task, the swarm's best adapter vs
// the best single expert and the composition baselines, all scored on the TEST split.
//
// Per seed: one LoRA expert per firm shard (fine-tuned on that shard only, seeded), then
//  * best single: the expert with the best dev char_acc,
//  * uniform soup: LinearMerge with equal weights,
//  * task arithmetic, TIES (density 0.5), DARE-TIES (density 0.5): lambda picked on dev
//    from a small grid (the usual way these are tuned), weights 1,
//  * SLERP (t = 0.5) of the two best experts on dev,
//  * Model Swarms (common/runner RunSwarm), utility = char_acc on dev.
// Only dev scores steer any choice; test is read once per final adapter.
//
//   bazel run //bench:legal_quality -- [--seeds 5] [--work_dir /tmp/wxp-legal-bench]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/legal/evaluator.h"
#include "common/merge.h"
#include "common/runner.h"

ABSL_FLAG(int, seeds, 5, "number of seeds");
ABSL_FLAG(int, first_seed, 1, "seeds run first_seed .. first_seed + seeds - 1 (tune on others)");
ABSL_FLAG(std::string, work_dir, "/tmp/wxp-legal-bench", "base model cache");
ABSL_FLAG(std::string, corpus_dir, "", "corpus (default /usr/share/common-licenses)");
ABSL_FLAG(std::string, firms, "GPL,LGPL,GFDL,MPL,Apache", "one expert per shard");
ABSL_FLAG(int, finetune_steps, wxp::legal::FineTuneOptions().steps,
          "LoRA fine-tune steps per expert");
ABSL_FLAG(double, finetune_lr, wxp::legal::FineTuneOptions().lr, "LoRA fine-tune learning rate");
ABSL_FLAG(bool, shared_init, false,
          "experts share one LoRA A initialisation (vendor-distributed init)");
ABSL_FLAG(int, pool_size, 0, "swarm particles (0 = 2 x experts)");
ABSL_FLAG(int, max_iterations, 30, "swarm hard stop");
ABSL_FLAG(int, patience, 8, "swarm patience");
ABSL_FLAG(double, step_length, 0.5, "swarm initial step length");
ABSL_FLAG(bool, verbose, false, "per-iteration swarm progress");
ABSL_FLAG(bool, swarm, true, "run the swarm (off: experts and baselines only, for tuning)");
ABSL_FLAG(int, context, wxp::legal::ModelConfig().context, "model: bytes of context");
ABSL_FLAG(int, embed, wxp::legal::ModelConfig().embed, "model: embedding width");
ABSL_FLAG(int, hidden, wxp::legal::ModelConfig().hidden, "model: hidden width");
ABSL_FLAG(int, rank, wxp::legal::ModelConfig().lora_rank, "model: LoRA rank");
ABSL_FLAG(double, alpha, wxp::legal::ModelConfig().lora_alpha, "model: LoRA alpha");
ABSL_FLAG(int, pretrain_steps, wxp::legal::ModelConfig().pretrain_steps, "model: base steps");
ABSL_FLAG(double, pretrain_lr, wxp::legal::ModelConfig().pretrain_lr, "model: base lr");

namespace wxp::legal {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Row {
  std::string method;
  double dev_acc = 0, test_acc = 0, test_loss = 0;
  std::string note;
};

int Main() {
  const double t_start = Now();
  LegalOptions options;
  options.corpus_dir = absl::GetFlag(FLAGS_corpus_dir);
  options.work_dir = absl::GetFlag(FLAGS_work_dir);
  options.log = &std::cout;
  options.model.context = absl::GetFlag(FLAGS_context);
  options.model.embed = absl::GetFlag(FLAGS_embed);
  options.model.hidden = absl::GetFlag(FLAGS_hidden);
  options.model.lora_rank = absl::GetFlag(FLAGS_rank);
  options.model.lora_alpha = absl::GetFlag(FLAGS_alpha);
  options.model.pretrain_steps = absl::GetFlag(FLAGS_pretrain_steps);
  options.model.pretrain_lr = absl::GetFlag(FLAGS_pretrain_lr);
  absl::StatusOr<LegalSetup> setup = LoadLegalSetup(options);
  if (!setup.ok()) {
    std::fprintf(stderr, "legal_quality: %s\n", setup.status().ToString().c_str());
    return 1;
  }
  const LegalModel& model = *setup->model;
  const Schema& schema = model.lora_schema();
  const std::vector<int64_t> sizes = schema.tensor_sizes();
  auto dev = MakeLegalEvaluator(setup->model, setup->corpus, Split::kDev);
  auto test = MakeLegalEvaluator(setup->model, setup->corpus, Split::kTest);
  if (!dev.ok() || !test.ok()) {
    std::fprintf(stderr, "legal_quality: %s %s\n", dev.status().ToString().c_str(),
                 test.status().ToString().c_str());
    return 1;
  }
  const std::vector<std::string> firms = absl::StrSplit(absl::GetFlag(FLAGS_firms), ',');
  std::printf("B5 legal quality: %d firms (%s), LoRA r=%d (%lld params), dev %lld bytes, "
              "test %lld bytes, torch threads %d\n",
              static_cast<int>(firms.size()), absl::GetFlag(FLAGS_firms).c_str(),
              model.config().lora_rank, static_cast<long long>(schema.total_params()),
              static_cast<long long>((*dev)->positions()),
              static_cast<long long>((*test)->positions()), model.config().threads);
  if (model.pretrained_now()) std::printf("pretrain: %.1f s\n", model.pretrain_seconds());

  auto score = [&](LegalEvaluator& ev, const std::vector<float>& x) {
    absl::StatusOr<Scores> s = ev.Evaluate({0, 0, x});
    if (!s.ok()) {
      std::fprintf(stderr, "legal_quality: evaluation failed: %s\n", s.status().ToString().c_str());
      std::exit(1);
    }
    return *s;
  };
  {
    const double t0 = Now();
    Scores s = score(**dev, {});
    std::printf("one dev evaluation: %.3f s; base dev char_acc %.4f loss %.4f\n", Now() - t0,
                s[kCharAccComponent], s[kLossComponent]);
  }

  absl::StatusOr<UtilityFunction> utility =
      UtilityFunction::Create({{kCharAccComponent, true, 1.0}});
  std::map<std::string, std::vector<double>> test_by_method;
  std::vector<std::string> method_order;
  int swarm_wins_all = 0, n_seeds = absl::GetFlag(FLAGS_seeds);
  double total_swarm_seconds = 0, total_finetune_seconds = 0;
  const int first_seed = absl::GetFlag(FLAGS_first_seed);
  for (int seed = first_seed; seed < first_seed + n_seeds; ++seed) {
    // Experts.
    std::vector<std::vector<float>> experts;
    std::vector<double> expert_dev;
    std::printf("\n== seed %d ==\n", seed);
    for (size_t i = 0; i < firms.size(); ++i) {
      FineTuneOptions ft;
      ft.steps = absl::GetFlag(FLAGS_finetune_steps);
      ft.lr = absl::GetFlag(FLAGS_finetune_lr);
      ft.seed = 1000 * seed + i;
      ft.init_seed = absl::GetFlag(FLAGS_shared_init) ? 7919 * seed : 1000 * seed + i;
      absl::StatusOr<LegalExpert> e = FineTuneLegalExpert(model, setup->corpus, firms[i], ft);
      if (!e.ok()) {
        std::fprintf(stderr, "legal_quality: %s\n", e.status().ToString().c_str());
        return 1;
      }
      total_finetune_seconds += e->stats.seconds;
      experts.push_back(e->adapter.values);
      expert_dev.push_back(score(**dev, experts.back())[kCharAccComponent]);
      // Own-family gain on the test split: each expert must be a real specialist.
      auto own = setup->corpus.GetForShard(Split::kTest, firms[i]);
      auto own_data = model.Tokenize(*own);
      auto base_own = model.Score({}, *own_data);
      auto exp_own = model.Score(experts.back(), *own_data);
      std::printf("  expert %-8s fine-tune %.1f s, train loss %.3f -> %.3f; own-family test "
                  "acc base %.4f -> %.4f; mixed dev acc %.4f\n",
                  firms[i].c_str(), e->stats.seconds, e->stats.initial_loss,
                  e->stats.final_loss, base_own->char_acc, exp_own->char_acc,
                  expert_dev.back());
    }
    std::vector<absl::Span<const float>> spans(experts.begin(), experts.end());
    std::vector<Row> rows;
    auto add = [&](const std::string& method, const std::vector<float>& x,
                   const std::string& note) {
      Scores t = score(**test, x);
      rows.push_back({method, score(**dev, x)[kCharAccComponent], t[kCharAccComponent],
                      t[kLossComponent], note});
    };
    add("base (no adapter)", std::vector<float>(schema.total_params(), 0.f), "");
    const size_t best = *BestSingle(expert_dev);
    add("best single expert", experts[best], firms[best]);
    add("uniform soup", *LinearMerge(spans, {}), "");
    // lambda tuned on dev for the unnormalised merges.
    auto tuned = [&](const std::string& method,
                     const std::function<absl::StatusOr<std::vector<float>>(double)>& merge) {
      double best_dev = -1, best_lambda = 0;
      std::vector<float> best_x;
      for (double lambda : {0.2, 0.4, 0.6, 0.8, 1.0}) {
        std::vector<float> x = *merge(lambda);
        const double d = score(**dev, x)[kCharAccComponent];
        if (d > best_dev) best_dev = d, best_lambda = lambda, best_x = std::move(x);
      }
      add(method, best_x, absl::StrFormat("lambda=%.1f", best_lambda));
    };
    tuned("task arithmetic", [&](double l) { return TaskArithmetic(spans, {}, l); });
    tuned("TIES (d=0.5)", [&](double l) { return TiesMerge(spans, {}, 0.5, sizes, {}, l); });
    tuned("DARE-TIES (d=0.5)",
          [&](double l) { return DareTiesMerge(spans, {}, 0.5, seed, {}, l); });
    std::vector<size_t> order(experts.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return expert_dev[a] > expert_dev[b]; });
    add("SLERP top-2 (t=0.5)", *Slerp(experts[order[0]], experts[order[1]], 0.5, sizes),
        firms[order[0]] + "+" + firms[order[1]]);

    RunnerOptions ro;
    ro.params.seed = seed;
    ro.params.pool_size = absl::GetFlag(FLAGS_pool_size);
    ro.params.max_iterations = absl::GetFlag(FLAGS_max_iterations);
    ro.params.patience = absl::GetFlag(FLAGS_patience);
    ro.params.step_length = absl::GetFlag(FLAGS_step_length);
    ro.params.min_step_length = std::min(ro.params.min_step_length, ro.params.step_length);
    if (absl::GetFlag(FLAGS_verbose)) {
      ro.on_iteration = [](const IterationSummary& s) {
        std::printf("    iter %2d  g %.4f  mean %.4f  step %.3f%s\n", s.iteration,
                    s.global_best_utility, s.mean_utility, s.step,
                    s.new_global_best ? "  *" : "");
      };
    }
    if (!absl::GetFlag(FLAGS_swarm)) {
      for (const Row& r : rows) {
        std::printf("  %-20s %9.4f %9.4f %9.4f  %s\n", r.method.c_str(), r.dev_acc, r.test_acc,
                    r.test_loss, r.note.c_str());
      }
      continue;
    }
    const double t0 = Now();
    absl::StatusOr<RunResult> run = RunSwarm(experts, *utility, **dev, ro);
    if (!run.ok()) {
      std::fprintf(stderr, "legal_quality: swarm: %s\n", run.status().ToString().c_str());
      return 1;
    }
    const double swarm_seconds = Now() - t0;
    total_swarm_seconds += swarm_seconds;
    int evals = 0;
    for (const IterationSummary& s : run->history) evals += s.evaluated;
    add("Model Swarms", run->best,
        absl::StrFormat("%d iters, %d evals, %.1f s, %s", run->history.back().iteration, evals,
                        swarm_seconds, TerminationName(run->termination)));

    std::printf("  %-20s %9s %9s %9s  %s\n", "method", "dev acc", "test acc", "test loss",
                "note");
    bool beats_all = true;
    const double swarm_test = rows.back().test_acc;
    for (const Row& r : rows) {
      std::printf("  %-20s %9.4f %9.4f %9.4f  %s\n", r.method.c_str(), r.dev_acc, r.test_acc,
                  r.test_loss, r.note.c_str());
      if (!test_by_method.count(r.method)) method_order.push_back(r.method);
      test_by_method[r.method].push_back(r.test_acc);
      if (r.method != "Model Swarms" && r.method != "base (no adapter)" &&
          r.test_acc >= swarm_test) {
        beats_all = false;
      }
    }
    swarm_wins_all += beats_all;
  }

  std::printf("\n== mean test char_acc over %d seeds ==\n", n_seeds);
  const double soup = [&] {
    double s = 0;
    for (double v : test_by_method["uniform soup"]) s += v;
    return s / n_seeds;
  }();
  for (const std::string& m : method_order) {
    double s = 0;
    for (double v : test_by_method[m]) s += v;
    const double mean = s / n_seeds;
    std::printf("  %-20s %9.4f  (%+.1f%% vs uniform soup)\n", m.c_str(), mean,
                100 * (mean - soup) / soup);
  }
  std::printf("swarm beats every baseline on the test split in %d of %d seeds\n",
              swarm_wins_all, n_seeds);
  std::printf("wall time %.1f s (fine-tunes %.1f s, swarms %.1f s)\n", Now() - t_start,
              total_finetune_seconds, total_swarm_seconds);
  return 0;
}

}  // namespace
}  // namespace wxp::legal

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows when piped to a file
  absl::ParseCommandLine(argc, argv);
  return wxp::legal::Main();
}
