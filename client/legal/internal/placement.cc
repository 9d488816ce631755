#include "client/legal/internal/placement.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/adapter.h"
#include "common/lora_layout.h"

namespace wxp::legal::internal {

absl::StatusOr<LoraPlacement> PlaceLora(const LoraPlacement& own_placement, int rank,
                                        const std::vector<LinearShape>& layers,
                                        const std::string& described, const Schema& schema,
                                        const std::optional<std::string>& config_json) {
  const Schema& own = own_placement.schema;
  if (!config_json) {
    if (schema == own) return own_placement;
    return absl::InvalidArgumentError(
        absl::StrCat("legal model: without its adapter_config.json only the model's own rank-",
                     rank, " LoRA can be scored (", schema.CheckSame(own).message(), ")"));
  }
  Adapter probe;
  probe.schema = schema;
  probe.config_json = config_json;
  absl::StatusOr<LoraLayout> layout = ParseLoraLayout(probe);
  if (!layout.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("legal model: ", layout.status().message()));
  }
  LoraPlacement p;
  p.schema = schema;
  p.modules.assign(layers.size(), {});
  for (const LoraModule& m : layout->modules) {
    size_t i = 0;
    while (i < layers.size() && m.name != absl::StrCat(kPeftModelPrefix, layers[i].module)) ++i;
    if (i == layers.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("legal model: tensor '", schema.tensor(m.a_tensor).name, "' is not on ",
                       described, " (base_model.model.<module>.lora_A.weight)"));
    }
    if (m.in_features != layers[i].in || m.out_features != layers[i].out) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "legal model: module %s has (out, in) = (%d, %d); the model's is (%d, %d)", m.name,
          m.out_features, m.in_features, layers[i].out, layers[i].in));
    }
    p.modules[i] = {static_cast<int>(m.a_tensor), static_cast<int>(m.b_tensor), m.scaling};
  }
  return p;
}

absl::Status CheckPartEnds(absl::Span<const int64_t> part_ends, int64_t positions) {
  int64_t previous = 0;
  for (int64_t end : part_ends) {
    if (end < previous) {
      return absl::InvalidArgumentError("legal model: part ends must be non-decreasing and >= 0");
    }
    previous = end;
  }
  if (part_ends.empty() || part_ends.back() != positions) {
    return absl::InvalidArgumentError(
        absl::StrCat("legal model: the last part must end at ", positions, " positions"));
  }
  return absl::OkStatus();
}

absl::Status CheckLora(const LoraPlacement& p, absl::Span<const float> lora) {
  if (static_cast<int64_t>(lora.size()) != p.schema.total_params()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("legal model: adapter has %d parameters, the model's LoRA has %d",
                        lora.size(), p.schema.total_params()));
  }
  for (float x : lora) {
    if (!std::isfinite(x)) {
      return absl::InvalidArgumentError("legal model: adapter holds a non-finite value");
    }
  }
  return absl::OkStatus();
}

}  // namespace wxp::legal::internal
