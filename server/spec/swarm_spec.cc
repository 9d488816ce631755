#include "server/spec/swarm_spec.h"

#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/adapter.h"
#include "common/local_trainer.h"
#include "common/local_training_proto.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace wxp::server {
namespace {

using wxp::v1::SwarmSpec;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("swarm spec: ", field, " ", what));
}

// Free-form text fields and their documented byte limits.
absl::Status CheckLength(absl::string_view field, const std::string& value, size_t max_bytes) {
  if (value.size() <= max_bytes) return absl::OkStatus();
  return Invalid(field,
                 absl::StrCat("is ", value.size(), " bytes; at most ", max_bytes, " are allowed"));
}

std::vector<UtilityComponent> ComponentsFromProto(
    const google::protobuf::RepeatedPtrField<wxp::v1::UtilityComponent>& in) {
  std::vector<UtilityComponent> out;
  for (const auto& c : in) {
    UtilityComponent u;
    u.name = c.name();
    u.maximize = c.direction() != wxp::v1::UtilityComponent::MINIMIZE;
    u.weight = c.weight();
    if (c.has_min_value()) u.min_value = c.min_value();
    if (c.has_max_value()) u.max_value = c.max_value();
    out.push_back(u);
  }
  return out;
}

}  // namespace

absl::Status ValidateSwarmName(absl::string_view name) {
  if (name.empty() || name.size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("swarm name must have 1 to 64 characters, got ", name.size()));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "swarm name '", name,
          "' may use only letters, digits, '.', '_' and '-', and must start with a letter or "
          "digit"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Schema> SchemaFromProto(const wxp::v1::AdapterSchema& schema) {
  std::vector<TensorSpec> tensors;
  std::set<std::string> names;
  for (int i = 0; i < schema.tensors_size(); ++i) {
    const auto& t = schema.tensors(i);
    const std::string field = absl::StrCat("schema.tensors[", i, "]");
    if (t.name().empty()) return Invalid(field, "has no name");
    if (!names.insert(t.name()).second) {
      return Invalid(field, absl::StrCat("repeats the name '", t.name(), "'"));
    }
    absl::StatusOr<DType> dtype = DTypeFromProto(t.dtype());
    if (!dtype.ok()) return Invalid(field, dtype.status().message());
    int64_t numel = 1;
    for (int64_t d : t.shape()) {
      if (d < 0 || __builtin_mul_overflow(numel, d, &numel)) {
        return Invalid(field, "has a negative or overflowing shape");
      }
    }
    tensors.push_back({t.name(), *dtype, {t.shape().begin(), t.shape().end()}});
  }
  if (tensors.empty()) return Invalid("schema", "has no tensors");
  // Schema's own checks too: a tab or newline in a name would make two different schemas
  // share a fingerprint, and the parameter count must fit int64 (the unchecked constructor
  // would overflow computing it).
  absl::StatusOr<Schema> checked = Schema::Create(std::move(tensors));
  if (!checked.ok()) return Invalid("schema:", checked.status().message());
  return checked;
}

wxp::v1::AdapterSchema SchemaToProto(const Schema& schema) {
  wxp::v1::AdapterSchema out;
  for (const TensorSpec& t : schema.tensors()) {
    auto* p = out.add_tensors();
    p->set_name(t.name);
    p->set_dtype(DTypeToProto(t.dtype));
    for (int64_t d : t.shape) p->add_shape(d);
  }
  out.set_fingerprint(schema.Fingerprint());
  return out;
}

wxp::v1::UtilityWeights UtilityToProto(const UtilityFunction& utility) {
  wxp::v1::UtilityWeights out;
  out.set_version(utility.version());
  for (const UtilityComponent& c : utility.components()) {
    auto* p = out.add_components();
    p->set_name(c.name);
    p->set_direction(c.maximize ? wxp::v1::UtilityComponent::MAXIMIZE
                                : wxp::v1::UtilityComponent::MINIMIZE);
    p->set_weight(c.weight);
    if (c.min_value) p->set_min_value(*c.min_value);
    if (c.max_value) p->set_max_value(*c.max_value);
  }
  return out;
}

absl::StatusOr<UtilityFunction> UtilityFromProto(const wxp::v1::UtilityWeights& weights) {
  return UtilityFunction::Create(ComponentsFromProto(weights.components()), weights.version());
}

absl::Status CheckSwarmSpecLimits(const SwarmSpec& spec) {
  WXP_RETURN_IF_ERROR(CheckLength("base_model", spec.base_model(), 256));
  WXP_RETURN_IF_ERROR(CheckLength("description", spec.description(), 1024));
  return absl::OkStatus();
}

absl::Status CheckExpertBaseModel(const SwarmSpec& spec, const std::string& adapter_config_json) {
  if (spec.space() == wxp::v1::TOKEN_MIXTURE) {
    // The expert's family is its base model; the base model itself (its blob and
    // architecture description) is checked where blobs are at hand (the coordinator).
    absl::StatusOr<LoraConfig> config = ParseLoraConfig(adapter_config_json);
    if (!config.ok() || config->base_model_name_or_path.empty()) {
      return absl::InvalidArgumentError(
          "a TOKEN_MIXTURE expert needs an adapter_config.json naming its base model "
          "(base_model_name_or_path and wxp_base_model_blob_id)");
    }
    if (spec.expert_families_size() == 0) return absl::OkStatus();
    for (const std::string& f : spec.expert_families()) {
      if (f == config->base_model_name_or_path) return absl::OkStatus();
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "the expert's base model '", config->base_model_name_or_path, "' is not among swarm '",
        spec.name(), "''s expert_families (", absl::StrJoin(spec.expert_families(), ", "), ")"));
  }
  if (spec.base_model().empty() || adapter_config_json.empty()) return absl::OkStatus();
  absl::StatusOr<LoraConfig> config = ParseLoraConfig(adapter_config_json);
  if (!config.ok() || config->base_model_name_or_path.empty()) return absl::OkStatus();
  if (config->base_model_name_or_path == spec.base_model()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("the experts were trained on base model '", config->base_model_name_or_path,
                   "' (adapter_config_json.base_model_name_or_path) but swarm '", spec.name(),
                   "' is for base model '", spec.base_model(), "'"));
}

absl::Status ResolveTemplate(BlobReader read, ResolvedSpec& resolved) {
  const std::string id = resolved.spec.template_blob_id();
  if (id.empty()) return absl::OkStatus();
  absl::StatusOr<std::string> bytes = read(id);
  if (absl::IsNotFound(bytes.status())) {
    return absl::NotFoundError(absl::StrCat("swarm spec: template_blob_id ", id,
                                            " has not been uploaded (UploadBlob it first)"));
  }
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::FromBytes(*std::move(bytes), id);
  if (!file.ok()) {
    return Invalid("template_blob_id",
                   absl::StrCat("is not a safetensors adapter: ", file.status().message()));
  }
  const Schema schema = AdapterFromSafetensors(*file).schema;
  if (schema.tensors().empty()) return Invalid("template_blob_id", "names a blob with no tensors");
  if (resolved.schema) {
    if (absl::Status same = schema.CheckSame(*resolved.schema); !same.ok()) {
      return Invalid("template_blob_id",
                     absl::StrCat("names an adapter whose schema differs from the explicit "
                                  "schema (",
                                  same.message(), "); give one or make them agree"));
    }
  }
  *resolved.spec.mutable_schema() = SchemaToProto(schema);
  resolved.schema = schema;
  return absl::OkStatus();
}

namespace {

// The particle space (SPEC 4.3): defaults written in, and every field that does not apply
// to the chosen space refused, so a spec never carries a setting that silently does
// nothing.
absl::Status ResolveTokenMixture(wxp::v1::SwarmSpec& spec) {
  switch (spec.combination()) {
    case wxp::v1::MIXTURE:
    case wxp::v1::LOG_LINEAR:
      break;
    case wxp::v1::TOKEN_COMBINATION_UNSPECIFIED:
      // The default is what B5-T measured best (proto/swarm_spec.proto has the figures).
      spec.set_combination(wxp::v1::MIXTURE);
      break;
    default:
      return Invalid("combination", absl::StrCat("must be MIXTURE or LOG_LINEAR, not ",
                                                 static_cast<int>(spec.combination())));
  }
  if (spec.decoder() != wxp::v1::COEFFICIENT_DECODER_UNSPECIFIED || spec.svd_rank() != 0 ||
      spec.per_module()) {
    return Invalid("decoder",
                   "svd_rank and per_module apply to EXPERT_COEFFICIENTS only: a "
                   "TOKEN_MIXTURE position is not decoded into an adapter");
  }
  if (!spec.base_model().empty()) {
    return Invalid("base_model",
                   "must be empty in the TOKEN_MIXTURE space: experts come from several base "
                   "models; list them in expert_families");
  }
  if (spec.expert_families_size() > 64) {
    return Invalid("expert_families", "has more than 64 entries");
  }
  std::set<std::string> seen;
  for (const std::string& f : spec.expert_families()) {
    if (f.empty() || f.size() > 256) {
      return Invalid("expert_families", "entries must be 1 to 256 bytes long");
    }
    if (!seen.insert(f).second) {
      return Invalid("expert_families", absl::StrCat("lists '", f, "' twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status ResolveSpace(wxp::v1::SwarmSpec& spec) {
  if (spec.space() == wxp::v1::PARTICLE_SPACE_KIND_UNSPECIFIED) spec.set_space(wxp::v1::WEIGHTS);
  if (spec.expert_sharing() == wxp::v1::EXPERT_SHARING_UNSPECIFIED) {
    spec.set_expert_sharing(wxp::v1::ALLOWED);
  }
  if (spec.expert_sharing() != wxp::v1::ALLOWED && spec.expert_sharing() != wxp::v1::FORBIDDEN) {
    return Invalid("expert_sharing", "must be ALLOWED or FORBIDDEN");
  }
  if (spec.svd_rank() < 0) {
    return Invalid("svd_rank", absl::StrCat("must be >= 1 with LORA_PRODUCT_SVD and 0 otherwise, "
                                            "got ",
                                            spec.svd_rank()));
  }
  const bool token = spec.space() == wxp::v1::TOKEN_MIXTURE;
  if (!token && spec.combination() != wxp::v1::TOKEN_COMBINATION_UNSPECIFIED) {
    return Invalid("combination", "applies to the TOKEN_MIXTURE space only");
  }
  if (!token && spec.expert_families_size() > 0) {
    return Invalid("expert_families", "applies to the TOKEN_MIXTURE space only");
  }
  switch (spec.space()) {
    case wxp::v1::WEIGHTS:
      if (spec.decoder() != wxp::v1::COEFFICIENT_DECODER_UNSPECIFIED) {
        return Invalid("decoder",
                       "applies to the EXPERT_COEFFICIENTS space only (space is WEIGHTS)");
      }
      if (spec.svd_rank() != 0) {
        return Invalid("svd_rank", "applies to decoder LORA_PRODUCT_SVD only (space is WEIGHTS)");
      }
      if (spec.per_module()) {
        return Invalid("per_module",
                       "applies to the EXPERT_COEFFICIENTS space only (space is WEIGHTS)");
      }
      return absl::OkStatus();
    case wxp::v1::EXPERT_COEFFICIENTS:
    case wxp::v1::TOKEN_MIXTURE:
      break;
    default:
      return Invalid("space", "must be WEIGHTS, EXPERT_COEFFICIENTS or TOKEN_MIXTURE");
  }
  if (spec.expert_sharing() == wxp::v1::FORBIDDEN) {
    return Invalid("expert_sharing",
                   absl::StrCat("is FORBIDDEN, which allows only the WEIGHTS space: ",
                                wxp::v1::ParticleSpaceKind_Name(spec.space()),
                                " hands every expert to every agent of the swarm"));
  }
  if (token) WXP_RETURN_IF_ERROR(ResolveTokenMixture(spec));
  switch (token ? wxp::v1::LINEAR_AB : spec.decoder()) {
    case wxp::v1::LINEAR_AB:
    case wxp::v1::LORA_PRODUCT:
      if (spec.svd_rank() != 0) {
        return Invalid("svd_rank", "applies to decoder LORA_PRODUCT_SVD only");
      }
      break;
    case wxp::v1::LORA_PRODUCT_SVD:
      if (spec.svd_rank() < 1) {
        return Invalid("svd_rank", "must be >= 1 with decoder LORA_PRODUCT_SVD");
      }
      break;
    case wxp::v1::COEFFICIENT_DECODER_UNSPECIFIED:
      return Invalid("decoder",
                     "is required in the EXPERT_COEFFICIENTS space: LINEAR_AB, LORA_PRODUCT or "
                     "LORA_PRODUCT_SVD");
    default:
      return Invalid("decoder", "must be LINEAR_AB, LORA_PRODUCT or LORA_PRODUCT_SVD");
  }
  if (spec.schema().tensors_size() > 0 || !spec.template_blob_id().empty()) {
    return Invalid("schema",
                   absl::StrCat("and template_blob_id apply to the WEIGHTS space only: in ",
                                wxp::v1::ParticleSpaceKind_Name(spec.space()),
                                " experts may differ in shape, and positions are coefficient "
                                "vectors"));
  }
  if (spec.transport_dtype() != wxp::v1::DTYPE_UNSPECIFIED &&
      spec.transport_dtype() != wxp::v1::DTYPE_F32) {
    return Invalid("transport_dtype", absl::StrCat("must be unset or DTYPE_F32 in the ",
                                                   wxp::v1::ParticleSpaceKind_Name(spec.space()),
                                                   " space (coefficients travel inline as fp32)"));
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// SPEC 12. Off is off: any tolerance or rate is then ignored, as for an absent message.
absl::Status ResolveAudit(wxp::v1::SwarmSpec& spec) {
  if (!spec.audit().enabled()) {
    spec.clear_audit();
    return absl::OkStatus();
  }
  wxp::v1::AuditPolicy& a = *spec.mutable_audit();
  if (!(a.sample_rate() >= 0 && a.sample_rate() <= 1)) {
    return Invalid("audit.sample_rate", absl::StrCat("must be in [0, 1], got ", a.sample_rate()));
  }
  if (!a.has_quarantine_after()) a.set_quarantine_after(3);
  if (a.quarantine_after() < 1) {
    return Invalid("audit.quarantine_after",
                   absl::StrCat("must be >= 1, got ", a.quarantine_after()));
  }
  std::set<std::string> components;
  for (const wxp::v1::UtilityComponent& c : spec.utility()) {
    components.insert(c.name());
    auto it = a.tolerance().find(c.name());
    if (it == a.tolerance().end()) {
      return Invalid("audit.tolerance",
                     absl::StrCat("has no entry for utility component '", c.name(),
                                  "': every component needs an absolute tolerance"));
    }
    if (!(std::isfinite(it->second) && it->second >= 0)) {
      return Invalid("audit.tolerance",
                     absl::StrCat("of '", c.name(), "' must be finite and >= 0, got ", it->second));
    }
  }
  for (const auto& [name, tol] : a.tolerance()) {
    if (components.count(name) == 0) {
      return Invalid("audit.tolerance",
                     absl::StrCat("names '", name, "', which is not a utility component"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ResolvedSpec> ResolveSwarmSpec(const SwarmSpec& in, uint64_t seed_if_unset) {
  WXP_RETURN_IF_ERROR(ValidateSwarmName(in.name()));
  SwarmSpec spec = in;

  // Hyperparameters: fill every default in, then let the engine's own check judge them.
  auto* h = spec.mutable_hyperparameters();
  const SwarmParams defaults;
  if (h->pool_size() < 0) return Invalid("hyperparameters.pool_size", "must be >= 0");
  if (!h->has_inertia()) h->set_inertia(defaults.inertia);
  if (!h->has_cognitive()) h->set_cognitive(defaults.cognitive);
  if (!h->has_social()) h->set_social(defaults.social);
  if (!h->has_repel()) h->set_repel(defaults.repel);
  if (!h->has_repel_enabled()) h->set_repel_enabled(defaults.repel_enabled);
  if (!h->has_step_length()) h->set_step_length(defaults.step_length);
  if (!h->has_step_decay()) h->set_step_decay(defaults.step_decay);
  if (!h->has_min_step_length()) {
    h->set_min_step_length(std::min(defaults.min_step_length, h->step_length()));
  }
  if (!h->has_patience()) h->set_patience(defaults.patience);
  if (!h->has_restart_patience()) h->set_restart_patience(defaults.restart_patience);
  if (!h->has_restart_cooldown()) h->set_restart_cooldown(defaults.restart_cooldown);
  if (!h->has_max_iterations()) h->set_max_iterations(defaults.max_iterations);
  if (!h->has_weight_randomness()) h->set_weight_randomness(defaults.weight_randomness);
  if (!h->has_seed()) h->set_seed(seed_if_unset);
  if (h->initial_velocity() == wxp::v1::INITIAL_VELOCITY_UNSPECIFIED) {
    h->set_initial_velocity(wxp::v1::RANDOM_PEER);
  }
  SwarmParams p;
  p.pool_size = h->pool_size();
  p.inertia = h->inertia();
  p.cognitive = h->cognitive();
  p.social = h->social();
  p.repel = h->repel();
  p.repel_enabled = h->repel_enabled();
  p.step_length = h->step_length();
  p.step_decay = h->step_decay();
  p.min_step_length = h->min_step_length();
  p.patience = h->patience();
  p.restart_patience = h->restart_patience();
  p.restart_cooldown = h->restart_cooldown();
  p.max_iterations = h->max_iterations();
  p.weight_randomness = h->weight_randomness();
  p.seed = h->seed();
  switch (h->initial_velocity()) {
    case wxp::v1::ZERO:
      p.initial_velocity = InitialVelocityMode::kZero;
      break;
    case wxp::v1::TOWARD_BEST:
      p.initial_velocity = InitialVelocityMode::kTowardBest;
      break;
    case wxp::v1::RANDOM_PEER:
      p.initial_velocity = InitialVelocityMode::kRandomPeer;
      break;
    default:
      return Invalid("hyperparameters.initial_velocity", "is not a known mode");
  }
  if (absl::Status s = p.Validate(); !s.ok()) {
    return Invalid("hyperparameters:", s.message());
  }

  // Utility.
  if (spec.utility_size() == 0) return Invalid("utility", "needs at least one component");
  absl::StatusOr<UtilityFunction> utility =
      UtilityFunction::Create(ComponentsFromProto(spec.utility()), 1);
  if (!utility.ok()) return Invalid("utility:", utility.status().message());

  for (auto& c : *spec.mutable_utility()) {
    if (c.direction() == wxp::v1::UtilityComponent::DIRECTION_UNSPECIFIED) {
      c.set_direction(wxp::v1::UtilityComponent::MAXIMIZE);
    }
  }

  // Rounds, uploads, experts, transport.
  if (spec.mode() == wxp::v1::ROUND_MODE_UNSPECIFIED) spec.set_mode(wxp::v1::SYNC);
  if (spec.mode() != wxp::v1::SYNC && spec.mode() != wxp::v1::ASYNC) {
    return Invalid("mode", "must be SYNC or ASYNC");
  }
  if (spec.quorum_rule_case() == SwarmSpec::kQuorumCount) {
    if (spec.quorum_count() < 1) {
      return Invalid("quorum_count", absl::StrCat("must be >= 1, got ", spec.quorum_count()));
    }
  } else {
    if (!spec.has_quorum()) spec.set_quorum(0.5);
    if (!(spec.quorum() > 0 && spec.quorum() <= 1)) {
      return Invalid("quorum", absl::StrCat("must be in (0, 1], got ", spec.quorum()));
    }
  }
  if (!spec.has_round_deadline_seconds()) spec.set_round_deadline_seconds(600);
  if (!(std::isfinite(spec.round_deadline_seconds()) && spec.round_deadline_seconds() > 0)) {
    return Invalid("round_deadline_seconds", absl::StrCat("must be a finite number > 0, got ",
                                                          spec.round_deadline_seconds()));
  }
  if (spec.upload_policy() == wxp::v1::UPLOAD_POLICY_UNSPECIFIED) {
    spec.set_upload_policy(wxp::v1::ON_DEMAND);
  }
  if (spec.upload_policy() != wxp::v1::ON_DEMAND && spec.upload_policy() != wxp::v1::ALWAYS) {
    return Invalid("upload_policy", "must be ON_DEMAND or ALWAYS");
  }
  if (!(spec.audit_sample_rate() >= 0 && spec.audit_sample_rate() <= 1)) {
    return Invalid("audit_sample_rate",
                   absl::StrCat("must be in [0, 1], got ", spec.audit_sample_rate()));
  }
  WXP_RETURN_IF_ERROR(ResolveAudit(spec));
  if (!spec.has_min_experts()) spec.set_min_experts(2);
  if (spec.min_experts() < 1) {
    return Invalid("min_experts", absl::StrCat("must be >= 1, got ", spec.min_experts()));
  }
  if (h->pool_size() > 0 && h->pool_size() < spec.min_experts()) {
    return Invalid("hyperparameters.pool_size",
                   absl::StrCat("(", h->pool_size(), ") is smaller than min_experts (",
                                spec.min_experts(), ")"));
  }
  if (spec.min_experts() < 2 && p.ResolvedPoolSize(spec.min_experts()) > spec.min_experts()) {
    return Invalid("min_experts",
                   "must be >= 2 when the pool grows by crossover (set pool_size to 1 to run a "
                   "single expert)");
  }
  if (spec.transport_dtype() == wxp::v1::DTYPE_F64) {
    return Invalid("transport_dtype", "must be F32, F16 or BF16");
  }
  if (spec.transport_dtype() != wxp::v1::DTYPE_UNSPECIFIED) {
    if (absl::Status d = DTypeFromProto(spec.transport_dtype()).status(); !d.ok()) {
      return Invalid("transport_dtype", d.message());
    }
  }

  // Schema.
  if (!spec.template_blob_id().empty() && !IsSha256Hex(spec.template_blob_id())) {
    return Invalid("template_blob_id", "must be 64 lower-case hex characters (a SHA-256)");
  }
  std::optional<Schema> explicit_schema;
  if (spec.schema().tensors_size() > 0) {
    WXP_ASSIGN_OR_RETURN(Schema schema, SchemaFromProto(spec.schema()));
    const std::string fingerprint = schema.Fingerprint();
    if (!spec.schema().fingerprint().empty() && spec.schema().fingerprint() != fingerprint) {
      return Invalid("schema.fingerprint",
                     absl::StrCat("is ", spec.schema().fingerprint(),
                                  " but the tensors listed have fingerprint ", fingerprint));
    }
    spec.mutable_schema()->set_fingerprint(fingerprint);
    explicit_schema = std::move(schema);
  } else if (!spec.schema().fingerprint().empty()) {
    return Invalid("schema", "has a fingerprint but no tensors");
  }
  WXP_RETURN_IF_ERROR(ResolveSpace(spec));
  // The same rules as the in-process runner's (one Validate), named as a spec field.
  if (absl::Status lt = LocalTrainingFromProto(spec.local_training())
                            .Validate(spec.space() == wxp::v1::WEIGHTS ? SpaceKind::kWeights
                                      : spec.space() == wxp::v1::EXPERT_COEFFICIENTS
                                          ? SpaceKind::kExpertCoefficients
                                          : SpaceKind::kTokenMixture);
      !lt.ok()) {
    return Invalid("local_training", absl::StrCat("is refused: ", lt.message()));
  }
  const int min_experts = spec.min_experts();
  return ResolvedSpec{std::move(spec), p, *std::move(utility), std::move(explicit_schema),
                      min_experts};
}

}  // namespace wxp::server
