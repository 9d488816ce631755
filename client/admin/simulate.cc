// `wxpctl simulate`: the in-process runner with the synthetic evaluator, on given adapters
// or on random ones, with per-iteration progress.
#include <cstdio>
#include <iomanip>

#include "absl/strings/str_format.h"
#include "client/admin/command_util.h"
#include "client/admin/commands.h"
#include "client/admin/experts.h"
#include "common/runner.h"
#include "common/synthetic.h"
#include "nlohmann/json.hpp"

namespace wxp::admin {
namespace {

const std::vector<cli::FlagSpec> kFlags = {
    {"experts", "number of random experts when no ADAPTER is given", false, "4"},
    {"params", "parameters per random expert", false, "100000"},
    {"seed", "seed of the swarm, the random experts and the hidden optimum", false, "1"},
    {"noise", "stddev of evaluation noise added to the utility", false, "0"},
    {"off-hull", "RMS distance of the hidden optimum from the experts' affine hull", false,
     "0.0005"},
    {"pool-size", "particles after crossover (0 = twice the experts)", false, "0"},
    {"max-iterations", "hard stop", false, "50"},
    {"patience", "stop when g has not improved for this many iterations", false, "5"},
    {"step-length", "initial step length lambda", false, "0.5"},
    {"drop-k", "Dropout-K: probability of skipping an iteration's evaluations", false, "0"},
    {"drop-n", "Dropout-N: probability of skipping a particle's evaluation", false, "0"},
    {"out", "write the best position as a PEFT directory here (needs ADAPTER inputs)"},
    {"json", "print the result as JSON instead of a table", true},
    {"quiet", "no per-iteration progress", true},
};

constexpr char kUsage[] = "[ADAPTER...] [flags]";

}  // namespace

int Simulate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<cli::ParsedArgs> p = ParseOrExit(args, kFlags, "simulate", kUsage, out, err, &code);
  if (!p) return code;

  RunnerOptions options;
  absl::StatusOr<int64_t> seed = p->GetInt("seed"), experts_n = p->GetInt("experts"),
                          params_n = p->GetInt("params"), pool = p->GetInt("pool-size"),
                          max_iter = p->GetInt("max-iterations"),
                          patience = p->GetInt("patience");
  absl::StatusOr<double> noise = p->GetDouble("noise"), off_hull = p->GetDouble("off-hull"),
                         step = p->GetDouble("step-length"), drop_k = p->GetDouble("drop-k"),
                         drop_n = p->GetDouble("drop-n");
  for (const absl::Status& s :
       {seed.status(), experts_n.status(), params_n.status(), pool.status(),
        max_iter.status(), patience.status(), noise.status(), off_hull.status(),
        step.status(), drop_k.status(), drop_n.status()}) {
    if (!s.ok()) return UsageError(err, "simulate", std::string(s.message()));
  }
  options.params.seed = static_cast<uint64_t>(*seed);
  options.params.pool_size = static_cast<int>(*pool);
  options.params.max_iterations = static_cast<int>(*max_iter);
  options.params.patience = static_cast<int>(*patience);
  options.params.step_length = *step;
  options.params.min_step_length = std::min(options.params.min_step_length, *step);
  options.drop_iteration = *drop_k;
  options.drop_particle = *drop_n;
  if (*noise < 0 || *off_hull < 0) {
    return UsageError(err, "simulate", "--noise and --off-hull must be >= 0");
  }

  absl::StatusOr<ExpertSet> set =
      p->positional().empty()
          ? RandomExperts(static_cast<int>(*experts_n), *params_n, options.params.seed)
          : LoadExperts(p->positional());
  if (!set.ok()) return Fail(err, set.status());
  if (p->Has("out") && !set->template_adapter) {
    return UsageError(err, "simulate", "--out needs ADAPTER inputs (they give the schema)");
  }

  absl::StatusOr<std::vector<float>> optimum =
      MakeHiddenOptimum(set->vectors, options.params.seed, *off_hull);
  if (!optimum.ok()) return Fail(err, optimum.status());
  absl::StatusOr<double> reachable = ReachableUtility(set->vectors, *optimum);
  if (!reachable.ok()) return Fail(err, reachable.status());
  double best_expert = -1e300;
  for (const auto& x : set->vectors) {
    best_expert = std::max(best_expert, NegativeRmsDistance(x, *optimum));
  }

  const bool json = p->GetBool("json");
  const bool progress = !json && !p->GetBool("quiet");
  if (progress) {
    out << absl::StrFormat("simulating %d experts x %d parameters (%s); reachable optimum %.6g\n",
                           set->vectors.size(), set->vectors[0].size(), set->description,
                           *reachable);
    out << absl::StrFormat("%5s  %13s  %13s  %13s  %7s  %8s\n", "iter", "g utility",
                           "g_w utility", "mean", "step", "restarts");
    options.on_iteration = [&out](const IterationSummary& s) {
      out << absl::StrFormat("%5d  %13.6g  %13.6g  %13.6g  %7.4f  %8d%s\n", s.iteration,
                             s.global_best_utility, s.global_worst_utility, s.mean_utility,
                             s.step, s.restarts,
                             s.dropped ? "  (dropped)" : (s.new_global_best ? "  *" : ""));
      out.flush();
    };
  }

  SyntheticEvaluator evaluator(*optimum, *noise, options.params.seed);
  absl::StatusOr<UtilityFunction> utility =
      UtilityFunction::Create({{kSyntheticComponent, true, 1.0}});
  absl::StatusOr<RunResult> result = RunSwarm(set->vectors, *utility, evaluator, options);
  if (!result.ok()) return Fail(err, result.status());

  // Fraction of the distance from the best expert to the reachable optimum that was closed.
  const double gap = *reachable - best_expert;
  const double closed = gap > 0 ? (result->best_utility - best_expert) / gap : 1.0;
  std::string written;
  if (p->Has("out")) {
    absl::Status s = WriteLike(*set->template_adapter, result->best, p->Get("out"));
    if (!s.ok()) return Fail(err, s);
    written = p->Get("out");
  }
  if (json) {
    nlohmann::ordered_json j;
    j["experts"] = set->vectors.size();
    j["parameters"] = set->vectors[0].size();
    j["particles"] = result->num_particles;
    j["iterations"] = result->history.back().iteration;
    j["termination"] = TerminationName(result->termination);
    j["best_utility"] = result->best_utility;
    j["best_expert_utility"] = best_expert;
    j["reachable_utility"] = *reachable;
    j["gap_closed"] = closed;
    nlohmann::ordered_json history = nlohmann::ordered_json::array();
    for (const IterationSummary& s : result->history) {
      history.push_back({{"iteration", s.iteration},
                         {"g", s.global_best_utility},
                         {"g_w", s.global_worst_utility},
                         {"mean", s.mean_utility},
                         {"step", s.step},
                         {"restarts", s.restarts}});
    }
    j["history"] = history;
    if (!written.empty()) j["out"] = written;
    out << j.dump(2) << "\n";
  } else {
    out << absl::StrFormat(
        "\nfinished after %d iterations (%s)\n"
        "  swarm best utility    %.6g\n"
        "  best expert utility   %.6g\n"
        "  reachable optimum     %.6g\n"
        "  gap closed            %.1f%%\n",
        result->history.back().iteration, TerminationName(result->termination),
        result->best_utility, best_expert, *reachable, 100 * closed);
    if (!written.empty()) out << "  best adapter written  " << written << "\n";
  }
  return kExitOk;
}

}  // namespace wxp::admin
