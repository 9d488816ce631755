#include "bench/b5_common.h"

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/legal/dp_expert.h"
#include "common/dp_record.h"

ABSL_FLAG(int, seeds, 5, "number of seeds");
ABSL_FLAG(int, first_seed, 1, "seeds run first_seed .. first_seed + seeds - 1 (tune on others)");
ABSL_FLAG(std::string, work_dir, "/tmp/wxp-legal-bench", "base model cache");
ABSL_FLAG(std::string, corpus_dir, "", "corpus (default /usr/share/common-licenses)");
ABSL_FLAG(std::string, firms, "GPL,LGPL,GFDL,MPL,Apache", "one expert per shard");
ABSL_FLAG(bool, finetune_until_plateau, true,
          "experts stop when their own held-out loss stops improving (else fixed steps)");
ABSL_FLAG(int, finetune_eval_every, 100, "plateau: steps between held-out evaluations");
ABSL_FLAG(int, finetune_patience, 5, "plateau: evaluations without improvement before stopping");
ABSL_FLAG(int, finetune_max_steps, 6000, "plateau: most steps an expert may take");
ABSL_FLAG(int, finetune_steps, wxp::legal::FineTuneOptions().steps,
          "fixed LoRA fine-tune steps per expert (without plateau stopping)");
ABSL_FLAG(double, finetune_lr, wxp::legal::FineTuneOptions().lr, "LoRA fine-tune learning rate");
ABSL_FLAG(int, dp_steps, 0, "DP experts: fixed steps (0 = legal::DpRecipe())");
ABSL_FLAG(int, dp_batch, 0, "DP experts: expected batch of Poisson sampling (0 = the recipe's)");
ABSL_FLAG(double, dp_lr, 0, "DP experts: learning rate (0 = the recipe's)");
ABSL_FLAG(bool, print_curves, false, "print each expert's held-out curve (first seed)");
ABSL_FLAG(int, pool_size, 0, "swarm particles (0 = 2 x experts)");
ABSL_FLAG(int, max_iterations, 30, "swarm hard stop");
ABSL_FLAG(int, patience, 8, "swarm patience");
ABSL_FLAG(double, step_length, 0.5, "swarm initial step length");
ABSL_FLAG(bool, verbose, false, "per-iteration swarm progress");
ABSL_FLAG(int, bootstrap_block, 256, "test positions per bootstrap block");
ABSL_FLAG(int, bootstrap_replicates, 2000, "bootstrap replicates");

namespace wxp::bench {

int RunMain(int argc, char** argv, int (*body)()) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  absl::ParseCommandLine(argc, argv);
  return body();
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what,
               status.ToString().c_str());
  std::exit(1);
}

legal::FineTuneOptions ExpertOptions(uint64_t seed, uint64_t init_seed, int max_steps,
                                     bool private_run) {
  legal::FineTuneOptions ft;
  ft.lr = absl::GetFlag(FLAGS_finetune_lr);
  ft.seed = seed;
  ft.init_seed = init_seed;
  if (private_run) {
    // DP-SGD's own recipe: a fixed number of steps (early stopping would read the private
    // text outside the accountant's view), with batches large enough for the noise.
    const legal::FineTuneOptions recipe = legal::DpRecipe();
    const int steps = absl::GetFlag(FLAGS_dp_steps), batch = absl::GetFlag(FLAGS_dp_batch);
    const double lr = absl::GetFlag(FLAGS_dp_lr);
    ft.steps = steps > 0 ? steps : recipe.steps;
    ft.batch = batch > 0 ? batch : recipe.batch;
    ft.lr = lr > 0 ? lr : recipe.lr;
    return ft;
  }
  if (absl::GetFlag(FLAGS_finetune_until_plateau)) {
    ft.steps = max_steps;
    ft.eval_every = absl::GetFlag(FLAGS_finetune_eval_every);
    ft.patience = absl::GetFlag(FLAGS_finetune_patience);
  } else {
    ft.steps = absl::GetFlag(FLAGS_finetune_steps);
  }
  return ft;
}

void PrintCurve(const std::string& name, const legal::FineTuneResult& r) {
  std::vector<std::string> points;
  for (const auto& [step, loss] : r.held_out_curve) {
    points.push_back(absl::StrFormat("%d:%.4f", step, loss));
  }
  std::printf("  curve %-8s (step:own held-out loss; best at %d) %s\n", name.c_str(), r.best_step,
              absl::StrJoin(points, " ").c_str());
}

legal::LegalExpert FineTuneExpert(const legal::LegalModel& model, const legal::Corpus& corpus,
                                  const std::string& firm, const std::string& label, uint64_t seed,
                                  uint64_t init_seed, bool first_seed,
                                  const std::optional<legal::DpBudget>& dp) {
  const legal::FineTuneOptions ft =
      ExpertOptions(seed, init_seed, absl::GetFlag(FLAGS_finetune_max_steps), dp.has_value());
  legal::LegalExpert e;
  std::string privacy;
  if (dp) {
    legal::DpLegalExpert d = Must(legal::FineTuneDpLegalExpert(model, corpus, firm, ft, *dp), "DP");
    privacy = absl::StrCat("; ", dp::DescribePrivacy(d.record));
    e = std::move(d.expert);
  } else {
    e = Must(legal::FineTuneLegalExpert(model, corpus, firm, ft), "fine-tune");
  }
  legal::TokenData own =
      Must(model.Tokenize(Must(corpus.GetForShard(legal::Split::kTest, firm), "shard")), "own");
  std::printf(
      "  expert %-8s %.1f s, %d steps (best %d), train loss %.3f -> %.3f; own-family "
      "test acc base %.4f -> %.4f%s\n",
      label.c_str(), e.stats.seconds, e.stats.steps_run, e.stats.best_step, e.stats.initial_loss,
      e.stats.final_loss, Must(model.Score({}, own), "own").char_acc,
      Must(model.Score(e.adapter.values, own), "own").char_acc, privacy.c_str());
  if (absl::GetFlag(FLAGS_print_curves) && first_seed) PrintCurve(label, e.stats);
  return e;
}

RunnerOptions SwarmOptions(uint64_t seed) {
  RunnerOptions ro;
  ro.params.seed = seed;
  ro.params.pool_size = absl::GetFlag(FLAGS_pool_size);
  ro.params.max_iterations = absl::GetFlag(FLAGS_max_iterations);
  ro.params.patience = absl::GetFlag(FLAGS_patience);
  ro.params.step_length = absl::GetFlag(FLAGS_step_length);
  ro.params.min_step_length = std::min(ro.params.min_step_length, ro.params.step_length);
  if (absl::GetFlag(FLAGS_verbose)) {
    ro.on_iteration = [](const IterationSummary& s) {
      std::printf(
          "    iter %2d  g %.4f  mean %.4f  step %.3f%s%s\n", s.iteration, s.global_best_utility,
          s.mean_utility, s.step, s.new_global_best ? "  *" : "",
          s.trained + s.training_failed > 0
              ? absl::StrFormat("  trained %d failed %d", s.trained, s.training_failed).c_str()
              : "");
    };
  }
  return ro;
}

int SwarmEvaluations(const RunResult& run) {
  int evals = 0;
  for (const IterationSummary& s : run.history) evals += s.evaluated + s.failed;
  return evals;
}

std::string FormatInterval(const Interval& i, bool sign) {
  return sign ? absl::StrFormat("%+.4f [%+.4f, %+.4f]", i.estimate, i.lo, i.hi)
              : absl::StrFormat("%.4f [%.4f, %.4f]", i.estimate, i.lo, i.hi);
}

void SeedTable::PrintHeader() const {
  std::printf("  %-26s %8s %8s %8s %6s %7s  %s\n", "method", "dev acc", "test acc", "dev-test",
              "evals", "steps", "note");
}

void SeedTable::Add(SeedRow r) {
  std::printf("  %-26s %8.4f %8.4f %+8.4f %6s %7s  %s\n", r.method.c_str(), r.dev_acc, r.test_acc,
              r.dev_acc - r.test_acc, r.evaluations ? absl::StrCat(r.evaluations).c_str() : "-",
              r.steps ? absl::StrCat(r.steps).c_str() : "-", r.note.c_str());
  if (!rows_.count(r.method)) order_.push_back(r.method);
  rows_[r.method].push_back(std::move(r));
}

absl::Status SeedTable::PrintSummary(int first_seed, int n_seeds, const std::string& reference,
                                     const std::optional<std::string>& bound) const {
  std::vector<std::string> methods;
  Outcomes outcomes;
  for (const std::string& m : order_) {
    const std::vector<SeedRow>& rows = rows_.at(m);
    if (static_cast<int>(rows.size()) != n_seeds) continue;
    methods.push_back(m);
    outcomes.emplace_back();
    for (const SeedRow& s : rows) outcomes.back().push_back(s.outcomes);
  }
  auto index = [&](const std::string& m) -> absl::StatusOr<size_t> {
    auto it = std::find(methods.begin(), methods.end(), m);
    if (it == methods.end()) {
      return absl::InvalidArgumentError(absl::StrCat("no row \"", m, "\" in every seed"));
    }
    return static_cast<size_t>(it - methods.begin());
  };
  absl::StatusOr<size_t> ref = index(reference);
  if (!ref.ok()) return ref.status();
  std::optional<size_t> bound_index;
  if (bound.has_value()) {
    absl::StatusOr<size_t> b = index(*bound);
    if (!b.ok()) return b.status();
    bound_index = *b;
  }
  absl::StatusOr<std::vector<RowIntervals>> ci = PairedBootstrap(
      outcomes, *ref, bound_index,
      {absl::GetFlag(FLAGS_bootstrap_block), absl::GetFlag(FLAGS_bootstrap_replicates), 12345});
  if (!ci.ok()) return ci.status();
  std::printf(
      "\n== test char_acc over %d seeds (%d..%d): mean [95%% CI]; paired delta vs %s "
      "[95%% CI];%s CIs: bootstrap over seeds and %d-byte blocks of test positions ==\n",
      n_seeds, first_seed, first_seed + n_seeds - 1, reference.c_str(),
      bound ? absl::StrFormat(" gap closed = (method - %s) / (bound - %s);", reference, reference)
                  .c_str()
            : "",
      absl::GetFlag(FLAGS_bootstrap_block));
  std::printf("  %-26s %-25s %-28s %s%8s %6s %7s\n", "method", "test acc",
              absl::StrCat("delta vs ", reference).c_str(),
              bound ? absl::StrFormat("%-24s ", "gap closed").c_str() : "", "dev-test", "evals",
              "steps");
  for (size_t r = 0; r < methods.size(); ++r) {
    double gap = 0, evals = 0, steps = 0;
    for (const SeedRow& s : rows_.at(methods[r])) {
      gap += (s.dev_acc - s.test_acc) / n_seeds;
      evals += static_cast<double>(s.evaluations) / n_seeds;
      steps += static_cast<double>(s.steps) / n_seeds;
    }
    std::string closed;
    if (const std::optional<Interval>& g = (*ci)[r].gap_closed) {
      closed = absl::StrFormat("%+7.2f [%+.2f, %+.2f] ", g->estimate, g->lo, g->hi);
    }
    std::printf("  %-26s %s  %s  %s%+8.4f %6s %7s\n", methods[r].c_str(),
                FormatInterval((*ci)[r].accuracy, false).c_str(),
                FormatInterval((*ci)[r].delta, true).c_str(), closed.c_str(), gap,
                evals > 0 ? absl::StrFormat("%.0f", evals).c_str() : "-",
                steps > 0 ? absl::StrFormat("%.0f", steps).c_str() : "-");
  }
  return absl::OkStatus();
}

}  // namespace wxp::bench
