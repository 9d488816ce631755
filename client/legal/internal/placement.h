// The torch-free half of LegalModel: where a PEFT LoRA's tensors act on the model, and the
// input checks on flat LoRA values. Kept out of model.cc (the LibTorch translation unit)
// to keep that file to the tensor work.
#ifndef WXP_CLIENT_LEGAL_INTERNAL_PLACEMENT_H_
#define WXP_CLIENT_LEGAL_INTERNAL_PLACEMENT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "client/legal/model.h"
#include "common/schema.h"

namespace wxp::legal::internal {

// A linear layer a LoRA may sit on: its PEFT module path below "base_model.model." and
// its weight's [out, in].
struct LinearShape {
  std::string module;
  int64_t in = 0;
  int64_t out = 0;
};

// LegalModel::PlaceLora for a model whose own adapters are placed by `own` (rank `rank`)
// and whose linear layers are `layers` (LoraPlacement::modules order); `described` names
// them in the refusal of a tensor on none of them ("fc1, fc2 or head").
absl::StatusOr<LoraPlacement> PlaceLora(const LoraPlacement& own, int rank,
                                        const std::vector<LinearShape>& layers,
                                        const std::string& described, const Schema& schema,
                                        const std::optional<std::string>& config_json);

// InvalidArgument unless `lora` has placement.schema's length and only finite values.
absl::Status CheckLora(const LoraPlacement& placement, absl::Span<const float> lora);

// InvalidArgument unless `part_ends` (LegalModel::Score) is non-empty, non-decreasing, starts
// >= 0 and ends at `positions`.
absl::Status CheckPartEnds(absl::Span<const int64_t> part_ends, int64_t positions);

}  // namespace wxp::legal::internal

#endif  // WXP_CLIENT_LEGAL_INTERNAL_PLACEMENT_H_
