// Validation and resolution of a wxp.v1.SwarmSpec (SPEC 4, 4.2, 5.2, 5.4): the first thing
// CreateSwarm does, before anything is stored. Every refusal is InvalidArgument naming the
// field and what would be accepted, so an operator can fix the spec file from the message.
#ifndef WXP_SERVER_SPEC_SWARM_SPEC_H_
#define WXP_SERVER_SPEC_SWARM_SPEC_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/dtype_proto.h"
#include "common/schema.h"
#include "common/swarm_engine.h"
#include "common/utility.h"
#include "proto/swarm_spec.pb.h"
#include "proto/wxp.pb.h"

namespace wxp::server {

// A validated spec with every default written in, and the values the engine needs.
struct ResolvedSpec {
  wxp::v1::SwarmSpec spec;  // defaults filled in (seed included): what the server stores
  SwarmParams params;
  UtilityFunction utility;
  std::optional<Schema> schema;  // when the spec gives one explicitly
  int min_experts = 2;
};

// Validates `spec` and fills in defaults. `seed_if_unset` becomes the seed when the spec
// has none (the server draws it), so the stored spec always reproduces the run.
absl::StatusOr<ResolvedSpec> ResolveSwarmSpec(const wxp::v1::SwarmSpec& spec,
                                              uint64_t seed_if_unset);

// The byte limits of the spec's free-form text fields (base_model 256, description 1024):
// InvalidArgument naming the field. Checked on CreateSwarm
// only, not by ResolveSwarmSpec, so a spec stored before the limits existed still loads.
absl::Status CheckSwarmSpecLimits(const wxp::v1::SwarmSpec& spec);

// SwarmSpec.base_model against a joining agent's adapter_config.json: InvalidArgument when
// both name a base model and they differ. An empty base_model, an empty config, or a config
// naming no base_model_name_or_path is not checked. The config is assumed to parse (Join
// checks that first). In TOKEN_MIXTURE, instead: InvalidArgument unless the config names
// a base model (base_model_name_or_path) and, when the spec lists expert_families, one of
// them.
absl::Status CheckExpertBaseModel(const wxp::v1::SwarmSpec& spec,
                                  const std::string& adapter_config_json);

// Fetches a stored blob's bytes by id; NotFound when the server does not hold it.
using BlobReader = absl::FunctionRef<absl::StatusOr<std::string>(const std::string& blob_id)>;

// Resolves the template adapter a resolved spec names (SwarmSpec.template_blob_id; nothing
// to do when it names none): the blob must be stored (NotFound naming it otherwise) and
// parse as safetensors with at least one tensor (InvalidArgument); its tensor names, dtypes
// and shapes become the swarm's schema, written into the spec with its fingerprint. When
// the spec also gives a schema explicitly, the two must be the same (InvalidArgument
// naming the first difference). The template's weights are not used.
absl::Status ResolveTemplate(BlobReader read, ResolvedSpec& resolved);

// Swarm names: 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit.
absl::Status ValidateSwarmName(absl::string_view name);

// Conversions between the wire and the common types (dtypes: common/dtype_proto.h).
absl::StatusOr<Schema> SchemaFromProto(const wxp::v1::AdapterSchema& schema);
wxp::v1::AdapterSchema SchemaToProto(const Schema& schema);
wxp::v1::UtilityWeights UtilityToProto(const UtilityFunction& utility);
absl::StatusOr<UtilityFunction> UtilityFromProto(const wxp::v1::UtilityWeights& weights);

}  // namespace wxp::server

#endif  // WXP_SERVER_SPEC_SWARM_SPEC_H_
