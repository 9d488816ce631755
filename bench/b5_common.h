// What the B5 benchmarks on the built-in legal task share (bench/legal_quality.cc: adapters
// of one model; bench/token_quality.cc: whole models of two architectures): the flags of the
// per-seed protocol (seeds, corpus, firms, how experts are fine-tuned, the swarm's
// hyperparameters, the bootstrap), the expert fine-tuning and swarm runner options those
// flags give, and the per-seed table whose rows the paired bootstrap (paired_bootstrap.h)
// summarises over seeds.
//
// The per-seed row format ("  <method>  dev test dev-test evals steps  note") is what
// bench/seed_summary.py reads when a run is split over several processes; keep it.
#ifndef WXP_BENCH_B5_COMMON_H_
#define WXP_BENCH_B5_COMMON_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "bench/paired_bootstrap.h"
#include "client/legal/dp_expert.h"
#include "client/legal/evaluator.h"
#include "client/legal/model.h"
#include "common/runner.h"

ABSL_DECLARE_FLAG(int, seeds);
ABSL_DECLARE_FLAG(int, first_seed);
ABSL_DECLARE_FLAG(std::string, work_dir);
ABSL_DECLARE_FLAG(std::string, corpus_dir);
ABSL_DECLARE_FLAG(std::string, firms);
ABSL_DECLARE_FLAG(bool, finetune_until_plateau);
ABSL_DECLARE_FLAG(int, finetune_eval_every);
ABSL_DECLARE_FLAG(int, finetune_patience);
ABSL_DECLARE_FLAG(int, finetune_max_steps);
ABSL_DECLARE_FLAG(int, finetune_steps);
ABSL_DECLARE_FLAG(double, finetune_lr);
ABSL_DECLARE_FLAG(bool, print_curves);
ABSL_DECLARE_FLAG(int, pool_size);
ABSL_DECLARE_FLAG(int, max_iterations);
ABSL_DECLARE_FLAG(int, patience);
ABSL_DECLARE_FLAG(double, step_length);
ABSL_DECLARE_FLAG(bool, verbose);
ABSL_DECLARE_FLAG(int, bootstrap_block);
ABSL_DECLARE_FLAG(int, bootstrap_replicates);

namespace wxp::bench {

// A benchmark's main(): stdout line-buffered (progress shows when piped to a file), the
// flags parsed, then `body`'s exit status.
int RunMain(int argc, char** argv, int (*body)());

// Monotonic seconds, for the wall times a run prints.
double Now();

// Exits the process (status 1) printing "<program>: <what>: <status>": a benchmark has no
// one to hand an error to.
[[noreturn]] void Fail(const char* what, const absl::Status& status);
template <typename T>
T Must(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Fail(what, v.status());
  return *std::move(v);
}
inline void Must(const absl::Status& s, const char* what) {
  if (!s.ok()) Fail(what, s);
}

// How a firm fine-tunes its expert (the --finetune_* flags): until its own held-out loss
// plateaus, at most `max_steps` steps, or exactly --finetune_steps without plateau stopping.
// A `private_run` (DP-SGD) always takes the fixed steps: plateau stopping would read the
// private held-out text at every check without pricing it in the budget.
legal::FineTuneOptions ExpertOptions(uint64_t seed, uint64_t init_seed, int max_steps,
                                     bool private_run = false);

// One line: an expert's held-out curve (--print_curves).
void PrintCurve(const std::string& name, const legal::FineTuneResult& r);

// Fine-tunes `firm`'s expert on `model` from its own train shard only (ExpertOptions(seed,
// init_seed, --finetune_max_steps)) and prints one line under `label`: time, steps, train
// loss, and its own family's test char_acc before and after (each expert must be a real
// specialist); its curve too with --print_curves and `first_seed`. With `dp`, the expert is
// trained by DP-SGD at that budget (legal/dp_expert.h, fixed steps) and the line also says
// what it spent. Exits on failure.
legal::LegalExpert FineTuneExpert(const legal::LegalModel& model, const legal::Corpus& corpus,
                                  const std::string& firm, const std::string& label, uint64_t seed,
                                  uint64_t init_seed, bool first_seed,
                                  const std::optional<legal::DpBudget>& dp = std::nullopt);

// A swarm's runner options from the swarm flags (pool, iterations, patience, step length;
// per-iteration progress with --verbose), for `seed`. The caller sets the space fields.
RunnerOptions SwarmOptions(uint64_t seed);

// Evaluations a swarm spent, failed ones included.
int SwarmEvaluations(const RunResult& run);

// "0.4203 [0.4150, 0.4255]", or signed ("+0.0061 [+0.0020, +0.0101]").
std::string FormatInterval(const Interval& i, bool sign);

// One method's result in one seed.
struct SeedRow {
  std::string method;
  double dev_acc = 0, test_acc = 0;
  std::vector<uint8_t> outcomes;  // per test position: 1 if the next byte was predicted
  int evaluations = 0;            // dev evaluations its choice spent
  int64_t steps = 0;              // gradient steps spent after the experts were trained
  std::string note;
};

// The per-seed tables of a run and their summary over seeds. Not thread-safe.
class SeedTable {
 public:
  // Prints the header of a seed's table.
  void PrintHeader() const;
  // Prints the row and keeps it (a method's rows in seed order).
  void Add(SeedRow row);

  // The paired bootstrap over the methods every one of `n_seeds` seeds produced (in
  // first-seen order), against `reference` (and the fraction of the gap to `bound` closed,
  // when given), printed as a table with each method's mean dev-test gap, evaluations and
  // steps. InvalidArgument if `reference` or `bound` is not such a method; the bootstrap's
  // errors pass through.
  absl::Status PrintSummary(int first_seed, int n_seeds, const std::string& reference,
                            const std::optional<std::string>& bound) const;

 private:
  std::vector<std::string> order_;
  std::map<std::string, std::vector<SeedRow>> rows_;
};

}  // namespace wxp::bench

#endif  // WXP_BENCH_B5_COMMON_H_
