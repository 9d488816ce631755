// `wxpctl merge`: the composition baselines of SPEC 4.1 over PEFT adapters, and the exact
// product merges of SPEC 4.3 (cat, svd) over LoRA experts that may differ in rank.
#include "common/merge.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/admin/command_util.h"
#include "client/admin/experts.h"
#include "client/admin/tensor_commands.h"
#include "common/lora_decode.h"

namespace wxp::admin {
namespace {

const std::vector<cli::FlagSpec> kFlags = {
    {"method", "linear | task_arithmetic | ties | dare | dare_ties | slerp | cat | svd"},
    {"weights",
     "comma-separated weight per adapter (default: equal); for cat and svd the coefficients "
     "α_j of ΔW = Σ α_j·s_j·B_j·A_j as given, not normalised (default 1/n each)"},
    {"svd-rank", "rank K of each module of an svd merge (required for svd)"},
    {"density", "fraction of entries kept by ties / dare / dare_ties", false, "0.5"},
    {"lambda", "scale of the merged task vector (task_arithmetic, ties, dare*)", false, "1"},
    {"t", "interpolation position for slerp (0 = first adapter, 1 = second)", false, "0.5"},
    {"base", "base adapter whose weights are subtracted to form task vectors"},
    {"seed", "seed of the dare drop masks", false, "0"},
    {"out", "output PEFT directory (required)"},
};

constexpr char kUsage[] = "--method M --out DIR [flags] ADAPTER...";

// cat and svd: the experts keep their own schemas (ranks, scalings, modules may differ).
int ProductMerge(const cli::ParsedArgs& p, const std::string& method,
                 const std::vector<double>& weights, std::ostream& out, std::ostream& err) {
  if (p.Has("base")) return UsageError(err, "merge", "--base is not used by cat or svd");
  LoraDecodeOptions options;
  options.decoder = LoraDecoder::kLoraProduct;
  if (method == "svd") {
    if (!p.Has("svd-rank")) return UsageError(err, "merge", "--svd-rank is required for svd");
    absl::StatusOr<int64_t> k = p.GetInt("svd-rank");
    if (!k.ok()) return UsageError(err, "merge", std::string(k.status().message()));
    options.decoder = LoraDecoder::kLoraProductSvd;
    options.svd_rank = *k;
  }
  std::vector<Adapter> experts;
  for (const std::string& path : p.positional()) {
    absl::StatusOr<Adapter> a = LoadAdapter(path);
    if (!a.ok()) return Fail(err, a.status());
    if (absl::Status s = CheckFinite(*a); !s.ok()) {
      return Fail(err, absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message())));
    }
    experts.push_back(*std::move(a));
  }
  std::vector<const Adapter*> ptrs;
  for (const Adapter& a : experts) ptrs.push_back(&a);
  std::vector<double> alpha = weights;
  if (alpha.empty()) alpha.assign(experts.size(), 1.0 / experts.size());
  absl::StatusOr<Adapter> merged =
      DecodeLora(ptrs, LoraCoefficients::PerExpert(std::move(alpha)), options);
  if (!merged.ok()) return Fail(err, merged.status());
  if (absl::Status s = SaveAdapterDir(*merged, p.Get("out")); !s.ok()) return Fail(err, s);
  out << absl::StrFormat("merged %d adapters with %s into %s\n", experts.size(), method,
                         p.Get("out"));
  return kExitOk;
}

}  // namespace

int Merge(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<cli::ParsedArgs> p = ParseOrExit(args, kFlags, "merge", kUsage, out, err, &code);
  if (!p) return code;
  const std::string method = p->Get("method");
  if (method.empty()) return UsageError(err, "merge", "--method is required");
  if (!p->Has("out")) return UsageError(err, "merge", "--out is required");
  if (p->positional().empty()) return UsageError(err, "merge", "no ADAPTER given");
  absl::StatusOr<std::vector<double>> weights = p->GetDoubleList("weights");
  absl::StatusOr<double> density = p->GetDouble("density"), lambda = p->GetDouble("lambda"),
                         t = p->GetDouble("t");
  absl::StatusOr<int64_t> seed = p->GetInt("seed");
  for (const absl::Status& s :
       {weights.status(), density.status(), lambda.status(), t.status(), seed.status()}) {
    if (!s.ok()) return UsageError(err, "merge", std::string(s.message()));
  }

  if (method == "cat" || method == "svd") return ProductMerge(*p, method, *weights, out, err);

  std::vector<std::string> paths = p->positional();
  const bool has_base = p->Has("base");
  if (has_base) paths.push_back(p->Get("base"));  // loaded with the rest: same schema check
  absl::StatusOr<ExpertSet> set = LoadExperts(paths);
  if (!set.ok()) return Fail(err, set.status());
  std::vector<float> base;
  if (has_base) {
    base = std::move(set->vectors.back());
    set->vectors.pop_back();
  }
  std::vector<absl::Span<const float>> spans(set->vectors.begin(), set->vectors.end());

  absl::StatusOr<std::vector<float>> merged;
  if (method == "linear") {
    merged = LinearMerge(spans, *weights);
  } else if (method == "task_arithmetic") {
    merged = TaskArithmetic(spans, *weights, *lambda, base);
  } else if (method == "ties") {
    merged = TiesMerge(spans, *weights, *density, set->tensor_sizes, base, *lambda);
  } else if (method == "dare") {
    merged = DareMerge(spans, *weights, *density, static_cast<uint64_t>(*seed), base, *lambda);
  } else if (method == "dare_ties") {
    merged = DareTiesMerge(spans, *weights, *density, static_cast<uint64_t>(*seed), base, *lambda);
  } else if (method == "slerp") {
    merged = Slerp(spans, *t, set->tensor_sizes);
  } else {
    return UsageError(err, "merge", absl::StrCat("unknown --method '", method, "'"));
  }
  if (!merged.ok()) return Fail(err, merged.status());
  if (absl::Status s = WriteLike(*set->template_adapter, *merged, p->Get("out")); !s.ok()) {
    return Fail(err, s);
  }
  out << absl::StrFormat("merged %d adapters with %s into %s\n", spans.size(), method,
                         p->Get("out"));
  return kExitOk;
}

}  // namespace wxp::admin
