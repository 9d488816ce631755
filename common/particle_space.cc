#include "common/particle_space.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace wxp {
namespace {

absl::Status CheckSameSchemas(const std::vector<Adapter>& experts, const std::string& what) {
  for (size_t j = 1; j < experts.size(); ++j) {
    if (absl::Status s = experts[j].schema.CheckSame(experts[0].schema); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(what, " needs identical schemas; expert ", j,
                                                     " differs from expert 0: ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckOptions(const ParticleSpaceOptions& o) {
  const bool svd =
      o.kind == SpaceKind::kExpertCoefficients && o.decoder == LoraDecoder::kLoraProductSvd;
  if (o.kind != SpaceKind::kExpertCoefficients &&
      (o.decoder != ParticleSpaceOptions().decoder || o.per_module)) {
    return absl::InvalidArgumentError(absl::StrCat("the ", SpaceKindName(o.kind),
                                                   " space takes no decoder and no per-module "
                                                   "coefficients"));
  }
  if (svd && o.svd_rank < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("lora_product_svd needs svd_rank >= 1, not ", o.svd_rank));
  }
  if (!svd && o.svd_rank != 0) {
    return absl::InvalidArgumentError("svd_rank applies to the lora_product_svd decoder only");
  }
  return absl::OkStatus();
}

}  // namespace

std::string SpaceKindName(SpaceKind kind) {
  switch (kind) {
    case SpaceKind::kWeights:
      return "weights";
    case SpaceKind::kExpertCoefficients:
      return "coefficients";
    case SpaceKind::kTokenMixture:
      return "token_mixture";
  }
  return "unknown";
}

std::string LoraDecoderName(LoraDecoder decoder) {
  switch (decoder) {
    case LoraDecoder::kLinearAB:
      return "linear_ab";
    case LoraDecoder::kLoraProduct:
      return "lora_product";
    case LoraDecoder::kLoraProductSvd:
      return "lora_product_svd";
  }
  return "unknown";
}

absl::StatusOr<LoraDecoder> ParseLoraDecoder(const std::string& name) {
  for (LoraDecoder d :
       {LoraDecoder::kLinearAB, LoraDecoder::kLoraProduct, LoraDecoder::kLoraProductSvd}) {
    if (name == LoraDecoderName(d)) return d;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown decoder '", name, "' (expected linear_ab, lora_product or lora_product_svd)"));
}

absl::StatusOr<std::unique_ptr<ParticleSpace>> ParticleSpace::Create(std::vector<Adapter> experts,
                                                                     ParticleSpaceOptions options) {
  if (experts.empty()) return absl::InvalidArgumentError("no experts given");
  WXP_RETURN_IF_ERROR(CheckOptions(options));
  for (size_t j = 0; j < experts.size(); ++j) {
    if (absl::Status s = CheckFinite(experts[j]); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("expert ", j, ": ", s.message()));
    }
  }
  std::vector<std::string> modules;
  if (options.kind == SpaceKind::kWeights) {
    WXP_RETURN_IF_ERROR(CheckSameSchemas(experts, "the weights space"));
  } else if (options.kind == SpaceKind::kExpertCoefficients) {
    if (options.decoder == LoraDecoder::kLinearAB) {
      WXP_RETURN_IF_ERROR(CheckSameSchemas(experts, "the linear_ab decoder"));
    }
    std::vector<const Adapter*> ptrs;
    for (const Adapter& a : experts) ptrs.push_back(&a);
    WXP_ASSIGN_OR_RETURN(LoraExpertSet set, CheckCompatibleExperts(ptrs));
    modules = std::move(set.modules);
  }
  return std::unique_ptr<ParticleSpace>(
      new ParticleSpace(std::move(experts), options, std::move(modules)));
}

ParticleSpace::ParticleSpace(std::vector<Adapter> experts, ParticleSpaceOptions options,
                             std::vector<std::string> modules)
    : experts_(std::move(experts)), options_(options), modules_(std::move(modules)) {
  for (const Adapter& a : experts_) expert_ptrs_.push_back(&a);
}

int64_t ParticleSpace::Dimension() const {
  const int64_t n = static_cast<int64_t>(experts_.size());
  if (options_.kind == SpaceKind::kWeights) return experts_[0].schema.total_params();
  return options_.per_module ? n * static_cast<int64_t>(modules_.size()) : n;
}

int ParticleSpace::CrossoverGroups() const {
  return options_.per_module ? static_cast<int>(modules_.size()) : 1;
}

std::vector<std::vector<float>> ParticleSpace::InitialPositions() const {
  std::vector<std::vector<float>> out;
  if (options_.kind == SpaceKind::kWeights) {
    for (const Adapter& a : experts_) out.push_back(a.values);
    return out;
  }
  const size_t n = experts_.size();
  const size_t per_expert = options_.per_module ? modules_.size() : 1;
  for (size_t j = 0; j < n; ++j) {
    std::vector<float> x(n * per_expert, 0.0f);
    // Per expert, x[j] is e_j; per module, row j of the n × M matrix is all ones.
    const size_t first = options_.per_module ? j * per_expert : j;
    for (size_t m = 0; m < per_expert; ++m) x[first + m] = 1.0f;
    out.push_back(std::move(x));
  }
  return out;
}

absl::StatusOr<Adapter> ParticleSpace::Decode(absl::Span<const float> x) const {
  if (static_cast<int64_t>(x.size()) != Dimension()) {
    return absl::InvalidArgumentError(absl::StrCat("position has ", x.size(), " values; the ",
                                                   Describe(), " space has ", Dimension()));
  }
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) {
      return absl::InvalidArgumentError(absl::StrCat("position value ", i, " is not finite"));
    }
  }
  if (options_.kind == SpaceKind::kTokenMixture) {
    return absl::FailedPreconditionError(
        "a token-mixture position is not an adapter: it weighs whole models per token (its "
        "export is a manifest)");
  }
  if (options_.kind == SpaceKind::kWeights) {
    Adapter out;
    out.schema = experts_[0].schema;
    out.metadata = experts_[0].metadata;
    out.config_json = experts_[0].config_json;
    out.values.assign(x.begin(), x.end());
    return out;
  }
  std::vector<double> alpha(x.begin(), x.end());
  const LoraCoefficients coefficients =
      options_.per_module
          ? LoraCoefficients::PerModule(experts_.size(), modules_.size(), std::move(alpha))
          : LoraCoefficients::PerExpert(std::move(alpha));
  return DecodeLora(expert_ptrs_, coefficients, {options_.decoder, options_.svd_rank});
}

std::string ParticleSpace::Describe() const {
  if (options_.kind == SpaceKind::kWeights) return "weights";
  if (options_.kind == SpaceKind::kTokenMixture) {
    return absl::StrCat("token_mixture/", TokenCombinationName(options_.combination));
  }
  std::string s = absl::StrCat("coefficients/", LoraDecoderName(options_.decoder));
  if (options_.decoder == LoraDecoder::kLoraProductSvd) {
    absl::StrAppend(&s, "(k=", options_.svd_rank, ")");
  }
  if (options_.per_module) absl::StrAppend(&s, "/per_module");
  return s;
}

absl::StatusOr<Scores> DecodingEvaluator::Evaluate(const EvaluationRequest& request) {
  WXP_ASSIGN_OR_RETURN(Adapter adapter, space_.Decode(request.params));
  return inner_.Evaluate({request.particle, request.iteration, &adapter});
}

absl::StatusOr<Scores> FlatAdapterEvaluator::Evaluate(const AdapterEvaluationRequest& request) {
  if (request.adapter == nullptr) return absl::InvalidArgumentError("no adapter to evaluate");
  WXP_RETURN_IF_ERROR(request.adapter->schema.CheckSame(schema_));
  return inner_.Evaluate({request.particle, request.iteration, request.adapter->values});
}

}  // namespace wxp
