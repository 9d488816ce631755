// `wxpctl simulate`: the in-process runner with the synthetic evaluator, on given adapters
// or on random ones, with per-iteration progress, in any particle space (SPEC 4.3).
#include <cstdio>
#include <iomanip>
#include <memory>

#include "absl/strings/str_format.h"
#include "client/admin/command_util.h"
#include "client/admin/experts.h"
#include "client/admin/tensor_commands.h"
#include "common/lora_synthetic.h"
#include "common/particle_space.h"
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
    {"off-hull",
     "RMS distance of the hidden optimum from the experts' affine hull (with delta_w: of the "
     "target's deltas from the span of the experts' deltas)",
     false, "0.0005"},
    {"pool-size", "particles after crossover (0 = twice the experts)", false, "0"},
    {"max-iterations", "hard stop", false, "50"},
    {"patience", "stop when g has not improved for this many iterations", false, "5"},
    {"step-length", "initial step length lambda", false, "0.5"},
    {"drop-k", "Dropout-K: probability of skipping an iteration's evaluations", false, "0"},
    {"drop-n", "Dropout-N: probability of skipping a particle's evaluation", false, "0"},
    {"space", "where the swarm searches: weights or coefficients (SPEC 4.3)", false, "weights"},
    {"decoder", "coefficients space: linear_ab, lora_product or lora_product_svd", false,
     "lora_product"},
    {"svd-rank", "rank per module of the lora_product_svd decoder", false},
    {"per-module", "coefficients space: one coefficient per expert and LoRA module", true},
    {"utility",
     "flat (RMS distance of the parameter vectors; weights space or linear_ab) or delta_w "
     "(RMS distance of the per-module LoRA deltas s*B*A; any space); default flat in the "
     "weights space and with linear_ab, delta_w otherwise"},
    {"rank", "rank of the random LoRA experts used without ADAPTER in a space or delta_w run",
     false, "4"},
    {"out",
     "write the best position as a PEFT directory here (the flat weights run needs ADAPTER "
     "inputs for it)"},
    {"json", "print the result as JSON instead of a table", true},
    {"quiet", "no per-iteration progress", true},
};

constexpr char kUsage[] = "[ADAPTER...] [flags]";

// Random LoRA experts for a run that needs LoRA structure: two square modules sized so the
// experts have about `params` parameters.
constexpr int kRandomLoraModules = 2;

// What a run searches and how it is scored. The evaluator chain is owned here; `evaluator`
// is its outer end, the one RunSwarm calls.
struct Problem {
  std::vector<std::vector<float>> positions;  // RunSwarm's experts
  size_t experts = 0;
  int64_t parameters = 0;  // per expert
  std::string description;
  std::string space = "weights";
  std::string utility = "flat";
  const char* component = kSyntheticComponent;
  double best_expert = -1e300;
  double reachable = 0;
  bool reachable_exact = true;  // else only the product span's optimum, a reference
  std::unique_ptr<ParticleSpace> particle_space;
  std::unique_ptr<Evaluator> flat;
  std::unique_ptr<AdapterEvaluator> adapter_evaluator;
  std::unique_ptr<Evaluator> decoding;
  Evaluator* evaluator = nullptr;
  std::optional<Adapter> template_adapter;  // the flat weights run writes --out with it
};

// The flat weights run: experts as vectors of one schema, scored by the flat synthetic task.
absl::StatusOr<Problem> FlatWeightsProblem(const cli::ParsedArgs& p, int experts_n,
                                           int64_t params_n, uint64_t seed, double noise,
                                           double off_hull) {
  Problem pr;
  absl::StatusOr<ExpertSet> set = p.positional().empty() ? RandomExperts(experts_n, params_n, seed)
                                                         : LoadExperts(p.positional());
  if (!set.ok()) return set.status();
  absl::StatusOr<std::vector<float>> optimum = MakeHiddenOptimum(set->vectors, seed, off_hull);
  if (!optimum.ok()) return optimum.status();
  absl::StatusOr<double> reachable = ReachableUtility(set->vectors, *optimum);
  if (!reachable.ok()) return reachable.status();
  pr.reachable = *reachable;
  for (const auto& x : set->vectors) {
    pr.best_expert = std::max(pr.best_expert, NegativeRmsDistance(x, *optimum));
  }
  pr.experts = set->vectors.size();
  pr.parameters = static_cast<int64_t>(set->vectors[0].size());
  pr.description = set->description;
  pr.template_adapter = std::move(set->template_adapter);
  pr.positions = std::move(set->vectors);
  pr.flat = std::make_unique<SyntheticEvaluator>(*optimum, noise, seed);
  pr.evaluator = pr.flat.get();
  return pr;
}

// Any other run: the experts as adapters in a ParticleSpace, decoded before evaluation.
absl::StatusOr<Problem> SpaceProblem(const cli::ParsedArgs& p, ParticleSpaceOptions options,
                                     bool delta_w, int experts_n, int64_t params_n, int64_t rank,
                                     uint64_t seed, double noise, double off_hull) {
  Problem pr;
  std::vector<Adapter> adapters;
  if (p.positional().empty()) {
    if (experts_n < 1) return absl::InvalidArgumentError("--experts must be >= 1");
    if (rank < 1) return absl::InvalidArgumentError("--rank must be >= 1");
    const int64_t width = std::max<int64_t>(1, params_n / (2 * kRandomLoraModules * rank));
    adapters = MakeRandomLoraExperts(experts_n, kRandomLoraModules, width, rank, seed);
    pr.description =
        absl::StrFormat("random LoRA experts, %d modules of rank %d", kRandomLoraModules, rank);
  } else {
    for (const std::string& path : p.positional()) {
      absl::StatusOr<Adapter> a = LoadAdapter(path);
      if (!a.ok()) return a.status();
      adapters.push_back(*std::move(a));
    }
    pr.description = absl::StrFormat("%d adapters", adapters.size());
  }
  pr.experts = adapters.size();
  for (const Adapter& a : adapters) {
    pr.parameters = std::max<int64_t>(pr.parameters, a.schema.total_params());
  }
  std::vector<std::vector<float>> flat_experts;
  if (!delta_w) {
    for (const Adapter& a : adapters) flat_experts.push_back(a.values);
  }
  const Schema schema = adapters.empty() ? Schema() : adapters[0].schema;
  absl::StatusOr<std::unique_ptr<ParticleSpace>> space = ParticleSpace::Create(adapters, options);
  if (!space.ok()) return space.status();
  pr.particle_space = *std::move(space);
  pr.space = pr.particle_space->Describe();
  if (delta_w) {
    pr.utility = "delta_w";
    pr.component = kDeltaWComponent;
    absl::StatusOr<DeltaTarget> target = MakeDeltaTarget(adapters, seed, off_hull);
    if (!target.ok()) return target.status();
    for (const Adapter& a : adapters) {
      absl::StatusOr<double> u = DeltaWUtility(*target, a);
      if (!u.ok()) return u.status();
      pr.best_expert = std::max(pr.best_expert, *u);
    }
    absl::StatusOr<double> span = ProductSpanUtility(*target, adapters, options.per_module);
    if (!span.ok()) return span.status();
    pr.reachable = *span;
    pr.reachable_exact = options.kind == SpaceKind::kExpertCoefficients &&
                         options.decoder == LoraDecoder::kLoraProduct;
    pr.adapter_evaluator = std::make_unique<DeltaWEvaluator>(*std::move(target), noise, seed);
  } else {
    absl::StatusOr<std::vector<float>> optimum = MakeHiddenOptimum(flat_experts, seed, off_hull);
    if (!optimum.ok()) return optimum.status();
    absl::StatusOr<double> reachable = ReachableUtility(flat_experts, *optimum);
    if (!reachable.ok()) return reachable.status();
    pr.reachable = *reachable;
    for (const auto& x : flat_experts) {
      pr.best_expert = std::max(pr.best_expert, NegativeRmsDistance(x, *optimum));
    }
    pr.flat = std::make_unique<SyntheticEvaluator>(*optimum, noise, seed);
    pr.adapter_evaluator = std::make_unique<FlatAdapterEvaluator>(schema, *pr.flat);
  }
  pr.decoding = std::make_unique<DecodingEvaluator>(*pr.particle_space, *pr.adapter_evaluator);
  pr.evaluator = pr.decoding.get();
  pr.positions = pr.particle_space->InitialPositions();
  return pr;
}

}  // namespace

int Simulate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<cli::ParsedArgs> p = ParseOrExit(args, kFlags, "simulate", kUsage, out, err, &code);
  if (!p) return code;

  RunnerOptions options;
  absl::StatusOr<int64_t> seed = p->GetInt("seed"), experts_n = p->GetInt("experts"),
                          params_n = p->GetInt("params"), pool = p->GetInt("pool-size"),
                          max_iter = p->GetInt("max-iterations"), patience = p->GetInt("patience");
  absl::StatusOr<double> noise = p->GetDouble("noise"), off_hull = p->GetDouble("off-hull"),
                         step = p->GetDouble("step-length"), drop_k = p->GetDouble("drop-k"),
                         drop_n = p->GetDouble("drop-n");
  for (const absl::Status& s :
       {seed.status(), experts_n.status(), params_n.status(), pool.status(), max_iter.status(),
        patience.status(), noise.status(), off_hull.status(), step.status(), drop_k.status(),
        drop_n.status()}) {
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

  const std::string space_name = p->Get("space");
  if (space_name != "weights" && space_name != "coefficients") {
    return UsageError(err, "simulate", "--space must be weights or coefficients");
  }
  ParticleSpaceOptions space_options;
  if (space_name == "coefficients") {
    space_options.kind = SpaceKind::kExpertCoefficients;
    absl::StatusOr<LoraDecoder> decoder = ParseLoraDecoder(p->Get("decoder"));
    if (!decoder.ok()) return UsageError(err, "simulate", std::string(decoder.status().message()));
    space_options.decoder = *decoder;
    space_options.per_module = p->GetBool("per-module");
    if (p->Has("svd-rank")) {
      absl::StatusOr<int64_t> k = p->GetInt("svd-rank");
      if (!k.ok()) return UsageError(err, "simulate", std::string(k.status().message()));
      space_options.svd_rank = *k;
    }
  } else if (p->Has("decoder") || p->Has("svd-rank") || p->GetBool("per-module")) {
    return UsageError(err, "simulate",
                      "--decoder, --svd-rank and --per-module need --space coefficients");
  }
  const bool same_schema =
      space_options.kind == SpaceKind::kWeights || space_options.decoder == LoraDecoder::kLinearAB;
  std::string utility_name = same_schema ? "flat" : "delta_w";
  if (p->Has("utility")) utility_name = p->Get("utility");
  if (utility_name != "flat" && utility_name != "delta_w") {
    return UsageError(err, "simulate", "--utility must be flat or delta_w");
  }
  if (utility_name == "flat" && !same_schema) {
    return UsageError(err, "simulate",
                      "--utility flat needs --space weights or --decoder linear_ab (the other "
                      "decoders write adapters of another schema)");
  }
  absl::StatusOr<int64_t> rank = p->GetInt("rank");
  if (!rank.ok()) return UsageError(err, "simulate", std::string(rank.status().message()));

  // The flat weights run is the historical one; everything else goes through a space.
  const bool flat_weights = space_options.kind == SpaceKind::kWeights && utility_name == "flat";
  if (flat_weights && p->Has("out") && p->positional().empty()) {
    return UsageError(err, "simulate", "--out needs ADAPTER inputs (they give the schema)");
  }
  absl::StatusOr<Problem> problem =
      flat_weights
          ? FlatWeightsProblem(*p, static_cast<int>(*experts_n), *params_n, options.params.seed,
                               *noise, *off_hull)
          : SpaceProblem(*p, space_options, utility_name == "delta_w", static_cast<int>(*experts_n),
                         *params_n, *rank, options.params.seed, *noise, *off_hull);
  if (!problem.ok()) return Fail(err, problem.status());
  Problem& pr = *problem;
  const char* reachable_label = pr.reachable_exact ? "reachable optimum" : "product-span optimum";

  const bool json = p->GetBool("json");
  const bool progress = !json && !p->GetBool("quiet");
  if (progress) {
    out << absl::StrFormat(
        "simulating %d experts x %d parameters (%s) in the %s space, utility %s; %s %.6g\n",
        pr.experts, pr.parameters, pr.description, pr.space, pr.utility, reachable_label,
        pr.reachable);
    out << absl::StrFormat("%5s  %13s  %13s  %13s  %7s  %8s\n", "iter", "g utility", "g_w utility",
                           "mean", "step", "restarts");
    options.on_iteration = [&out](const IterationSummary& s) {
      out << absl::StrFormat("%5d  %13.6g  %13.6g  %13.6g  %7.4f  %8d%s\n", s.iteration,
                             s.global_best_utility, s.global_worst_utility, s.mean_utility, s.step,
                             s.restarts,
                             s.dropped ? "  (dropped)" : (s.new_global_best ? "  *" : ""));
      out.flush();
    };
  }

  absl::StatusOr<UtilityFunction> utility = UtilityFunction::Create({{pr.component, true, 1.0}});
  if (pr.particle_space) options.crossover_groups = pr.particle_space->CrossoverGroups();
  absl::StatusOr<RunResult> result = RunSwarm(pr.positions, *utility, *pr.evaluator, options);
  if (!result.ok()) return Fail(err, result.status());

  // Fraction of the distance from the best expert to the reachable optimum that was closed.
  const double gap = pr.reachable - pr.best_expert;
  const double closed = gap > 0 ? (result->best_utility - pr.best_expert) / gap : 1.0;
  std::string written;
  if (p->Has("out")) {
    absl::Status s;
    if (pr.particle_space) {
      absl::StatusOr<Adapter> best = pr.particle_space->Decode(result->best);
      s = best.ok() ? SaveAdapterDir(*best, p->Get("out")) : best.status();
    } else {
      s = WriteLike(*pr.template_adapter, result->best, p->Get("out"));
    }
    if (!s.ok()) return Fail(err, s);
    written = p->Get("out");
  }
  if (json) {
    nlohmann::ordered_json j;
    j["experts"] = pr.experts;
    j["parameters"] = pr.parameters;
    j["space"] = pr.space;
    j["utility"] = pr.utility;
    j["dimension"] = pr.positions[0].size();
    j["particles"] = result->num_particles;
    j["iterations"] = result->history.back().iteration;
    j["termination"] = TerminationName(result->termination);
    j["best_utility"] = result->best_utility;
    j["best_expert_utility"] = pr.best_expert;
    j["reachable_utility"] = pr.reachable;
    j["reachable_exact"] = pr.reachable_exact;
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
        "  %-21s %.6g\n"
        "  gap closed            %.1f%%\n",
        result->history.back().iteration, TerminationName(result->termination),
        result->best_utility, pr.best_expert, reachable_label, pr.reachable, 100 * closed);
    if (!written.empty()) out << "  best adapter written  " << written << "\n";
  }
  return kExitOk;
}

}  // namespace wxp::admin
