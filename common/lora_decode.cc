// The only translation unit of common/ that includes LibTorch (for QR and SVD).
#include "common/lora_decode.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace wxp {
namespace {

using Json = nlohmann::ordered_json;

// One decoded module: factors of rank `rank` in row-major fp32.
struct DecodedModule {
  int64_t rank = 0;
  std::vector<float> a;  // [rank, in]
  std::vector<float> b;  // [out, rank]
};

absl::Status CheckCoefficients(const LoraExpertSet& set, const LoraCoefficients& alpha) {
  const size_t n = set.layouts.size();
  if (alpha.experts() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("coefficients are for ", alpha.experts(), " experts, not ", n));
  }
  if (alpha.per_module() && alpha.modules() != set.modules.size()) {
    return absl::InvalidArgumentError(absl::StrCat("per-module coefficients cover ",
                                                   alpha.modules(), " modules; the experts have ",
                                                   set.modules.size()));
  }
  const size_t expected = alpha.per_module() ? n * alpha.modules() : n;
  if (alpha.values().size() != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("coefficients hold ", alpha.values().size(), " values, not ", expected));
  }
  for (size_t i = 0; i < alpha.values().size(); ++i) {
    if (!std::isfinite(alpha.values()[i])) {
      return absl::InvalidArgumentError(absl::StrCat("coefficient ", i, " is not finite"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Adapter> DecodeLinearAB(const std::vector<const Adapter*>& experts,
                                       const LoraExpertSet& set, const LoraCoefficients& alpha) {
  const Schema& schema = experts[0]->schema;
  for (size_t j = 1; j < experts.size(); ++j) {
    if (absl::Status s = experts[j]->schema.CheckSame(schema); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("LINEAR_AB needs identical schemas; expert ",
                                                     j, " differs from expert 0: ", s.message()));
    }
  }
  Adapter out = *experts[0];
  std::vector<double> acc;
  // Identical schemas give identical layouts, whose module order is set.modules'.
  const std::vector<LoraModule>& modules = set.layouts[0].modules;
  for (size_t m = 0; m < modules.size(); ++m) {
    for (size_t t : {modules[m].a_tensor, modules[m].b_tensor}) {
      const int64_t offset = schema.offset(t), numel = schema.tensor(t).numel();
      acc.assign(numel, 0.0);
      for (size_t j = 0; j < experts.size(); ++j) {
        const double c = alpha.at(j, m);
        const float* x = experts[j]->values.data() + offset;
        for (int64_t i = 0; i < numel; ++i) acc[i] += c * x[i];
      }
      for (int64_t i = 0; i < numel; ++i) out.values[offset + i] = static_cast<float>(acc[i]);
    }
  }
  return out;
}

// A' (rows of every A_j) and B' (columns α_j·s_j·B_j) of module `m` of the set.
DecodedModule Concatenate(const std::vector<const Adapter*>& experts, const LoraExpertSet& set,
                          const LoraCoefficients& alpha, size_t m) {
  const int64_t in = set.in_features[m], out = set.out_features[m];
  DecodedModule d;
  for (const LoraLayout& l : set.layouts) {
    if (int k = l.Find(set.modules[m]); k >= 0) d.rank += l.modules[k].rank;
  }
  d.a.reserve(d.rank * in);
  d.b.assign(out * d.rank, 0.f);
  int64_t col = 0;
  for (size_t j = 0; j < experts.size(); ++j) {
    const int k = set.layouts[j].Find(set.modules[m]);
    if (k < 0) continue;
    const LoraModule& mod = set.layouts[j].modules[k];
    const Schema& s = experts[j]->schema;
    const float* a = experts[j]->values.data() + s.offset(mod.a_tensor);
    const float* b = experts[j]->values.data() + s.offset(mod.b_tensor);
    d.a.insert(d.a.end(), a, a + mod.rank * in);
    const double c = alpha.at(j, m) * mod.scaling;
    for (int64_t row = 0; row < out; ++row) {
      for (int64_t i = 0; i < mod.rank; ++i) {
        d.b[row * d.rank + col + i] = static_cast<float>(c * b[row * mod.rank + i]);
      }
    }
    col += mod.rank;
  }
  return d;
}

// Best rank-k approximation of B'·A' from QR(B') and QR(A'ᵀ): B'A' = Q_B (R_B R_Aᵀ) Q_Aᵀ,
// and the SVD of the small core gives the singular vectors in the Q bases. Double precision:
// the factors of a near-degenerate ΔW are ill-conditioned, the values written are fp32.
DecodedModule TruncateSvd(const DecodedModule& full, int64_t in, int64_t out, int64_t k) {
  const at::TensorOptions f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor a =
      at::from_blob(const_cast<float*>(full.a.data()), {full.rank, in}, f32).to(at::kDouble);
  at::Tensor b =
      at::from_blob(const_cast<float*>(full.b.data()), {out, full.rank}, f32).to(at::kDouble);
  auto [qb, rb] = at::linalg_qr(b);
  auto [qa, ra] = at::linalg_qr(a.t());
  auto [u, s, vh] = at::linalg_svd(rb.mm(ra.t()), /*full_matrices=*/false);
  const int64_t kept = std::min<int64_t>(k, s.size(0));
  at::Tensor root = s.narrow(0, 0, kept).sqrt();
  at::Tensor b_k = qb.mm(u.narrow(1, 0, kept)) * root.unsqueeze(0);       // [out, kept]
  at::Tensor a_k = root.unsqueeze(1) * vh.narrow(0, 0, kept).mm(qa.t());  // [kept, in]
  // Zero factors up to rank k: every module of the result has the same rank.
  at::Tensor b_pad = at::zeros({out, k}, at::kDouble);
  at::Tensor a_pad = at::zeros({k, in}, at::kDouble);
  b_pad.narrow(1, 0, kept).copy_(b_k);
  a_pad.narrow(0, 0, kept).copy_(a_k);
  b_pad = b_pad.to(at::kFloat).contiguous();
  a_pad = a_pad.to(at::kFloat).contiguous();
  DecodedModule d;
  d.rank = k;
  d.a.assign(a_pad.data_ptr<float>(), a_pad.data_ptr<float>() + a_pad.numel());
  d.b.assign(b_pad.data_ptr<float>(), b_pad.data_ptr<float>() + b_pad.numel());
  return d;
}

// target_modules of the result: kept when the experts agree, else their lists merged.
absl::StatusOr<Json> MergedTargetModules(const std::vector<const Adapter*>& experts,
                                         const Json& first) {
  Json merged = first.contains("target_modules") ? first["target_modules"] : Json();
  for (size_t j = 1; j < experts.size(); ++j) {
    if (!experts[j]->config_json) continue;
    const Json c = Json::parse(*experts[j]->config_json, nullptr, false);
    if (!c.contains("target_modules")) continue;
    const Json& t = c["target_modules"];
    if (t == merged || t.is_null()) continue;
    if (merged.is_null()) {
      merged = t;
      continue;
    }
    if (!t.is_array() || !merged.is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat("expert ", j, "'s target_modules ", t.dump(), " differ from ", merged.dump(),
                       " and one is a regular expression; they cannot be merged"));
    }
    for (const Json& name : t) {
      if (std::find(merged.begin(), merged.end(), name) == merged.end()) merged.push_back(name);
    }
  }
  return merged;
}

// The first expert's config with the keys the decoded ranks and scaling 1 require changed.
absl::StatusOr<std::string> DecodedConfig(const std::vector<const Adapter*>& experts,
                                          const std::vector<std::string>& modules,
                                          const std::vector<int64_t>& ranks) {
  const Adapter& first = *experts[0];
  Json j = Json::parse(first.config_json ? *first.config_json : InferLoraConfig(first.schema),
                       nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("expert 0's config is not an object");
  WXP_ASSIGN_OR_RETURN(Json targets, MergedTargetModules(experts, j));
  if (!targets.is_null()) j["target_modules"] = targets;
  // The most common rank is r; ties go to the first such rank in module order.
  std::map<int64_t, int> count;
  int64_t r = ranks.empty() ? 1 : ranks[0];
  for (int64_t x : ranks) {
    if (++count[x] > count[r]) r = x;
  }
  Json rank_pattern = Json::object(), alpha_pattern = Json::object();
  for (size_t m = 0; m < modules.size(); ++m) {
    if (ranks[m] == r) continue;
    rank_pattern[PeftModuleKey(modules[m])] = ranks[m];
    alpha_pattern[PeftModuleKey(modules[m])] = ranks[m];
  }
  j["r"] = r;
  j["lora_alpha"] = r;
  j["rank_pattern"] = rank_pattern;
  j["alpha_pattern"] = alpha_pattern;
  if (j.contains("use_rslora")) j["use_rslora"] = false;
  return j.dump(2);
}

absl::StatusOr<Adapter> DecodeProduct(const std::vector<const Adapter*>& experts,
                                      const LoraExpertSet& set, const LoraCoefficients& alpha,
                                      const LoraDecodeOptions& options) {
  std::vector<TensorSpec> specs;
  std::vector<int64_t> ranks;
  std::vector<float> values;
  for (size_t m = 0; m < set.modules.size(); ++m) {
    DecodedModule d = Concatenate(experts, set, alpha, m);
    if (options.decoder == LoraDecoder::kLoraProductSvd) {
      d = TruncateSvd(d, set.in_features[m], set.out_features[m], options.svd_rank);
    }
    specs.push_back({set.modules[m] + ".lora_A.weight", DType::kF32, {d.rank, set.in_features[m]}});
    specs.push_back(
        {set.modules[m] + ".lora_B.weight", DType::kF32, {set.out_features[m], d.rank}});
    ranks.push_back(d.rank);
    values.insert(values.end(), d.a.begin(), d.a.end());
    values.insert(values.end(), d.b.begin(), d.b.end());
  }
  Adapter out;
  WXP_ASSIGN_OR_RETURN(out.schema, Schema::Create(std::move(specs)));
  out.values = std::move(values);
  out.metadata = experts[0]->metadata;
  WXP_ASSIGN_OR_RETURN(out.config_json, DecodedConfig(experts, set.modules, ranks));
  return out;
}

}  // namespace

LoraCoefficients LoraCoefficients::PerExpert(std::vector<double> alpha) {
  const size_t n = alpha.size();
  return LoraCoefficients(n, 0, std::move(alpha));
}

LoraCoefficients LoraCoefficients::PerModule(size_t experts, size_t modules,
                                             std::vector<double> alpha) {
  return LoraCoefficients(experts, modules, std::move(alpha));
}

absl::StatusOr<Adapter> DecodeLora(const std::vector<const Adapter*>& experts,
                                   const LoraCoefficients& alpha,
                                   const LoraDecodeOptions& options) {
  WXP_ASSIGN_OR_RETURN(LoraExpertSet set, CheckCompatibleExperts(experts));
  WXP_RETURN_IF_ERROR(CheckCoefficients(set, alpha));
  if (options.decoder == LoraDecoder::kLoraProductSvd && options.svd_rank < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("LORA_PRODUCT_SVD needs svd_rank >= 1, not ", options.svd_rank));
  }
  try {
    if (options.decoder == LoraDecoder::kLinearAB) return DecodeLinearAB(experts, set, alpha);
    return DecodeProduct(experts, set, alpha, options);
  } catch (const std::exception& e) {  // c10::Error derives from std::exception
    return absl::InternalError(absl::StrCat("lora decode: libtorch: ", e.what()));
  }
}

}  // namespace wxp
