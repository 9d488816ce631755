// The privacy an adapter's training spent (SPEC 12), as recorded in the adapter itself.
//
// Where: the safetensors header's "__metadata__" (a string-to-string map), under the key
// "wxp_dp", as a JSON object. Not in adapter_config.json: some PEFT versions build
// LoraConfig from that file's keys and refuse unknown ones, while every safetensors reader
// (PEFT's included) passes __metadata__ by. And the record must travel with the weights: a
// blob is the safetensors file's bytes (SPEC 3), so the record is inside what a swarm
// uploads, covered by its blob id, and cannot be swapped without changing the id. The
// config file never goes on the wire as part of a blob.
//
// The record:
//   {"epsilon": 3.98, "delta": 1e-05, "accountant": "rdp-poisson-sgm", "examples": 41230,
//    "phases": [{"what": "finetune", "sample_rate": 0.00155, "noise_multiplier": 0.93,
//                "clip_norm": 1, "steps": 1000}, ...]}
// ε is the composition of all phases (common/dp_accountant.h) at δ; the phases are kept so
// later training (local training, SPEC 4.4) can compose onto them exactly.
#ifndef WXP_COMMON_DP_RECORD_H_
#define WXP_COMMON_DP_RECORD_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dp_accountant.h"
#include "common/safetensors.h"

namespace wxp::dp {

inline constexpr char kMetadataKey[] = "wxp_dp";

struct PrivacyPhase {
  std::string what;  // "finetune", "local_training", ...
  double sample_rate = 0;
  double noise_multiplier = 0;
  double clip_norm = 0;
  int64_t steps = 0;
  SgmPhase sgm() const { return {sample_rate, noise_multiplier, steps}; }
};

struct PrivacyRecord {
  double epsilon = 0;
  double delta = 0;
  std::string accountant = kAccountantName;
  int64_t examples = 0;  // the training set's size (the unit protected is one example)
  std::vector<PrivacyPhase> phases;
};

// The record of `phases` over a set of `examples` at `delta`: ε by the accountant.
// Fails as ComputeEpsilon.
absl::StatusOr<PrivacyRecord> MakePrivacyRecord(std::vector<PrivacyPhase> phases, double delta,
                                                int64_t examples);

// Compact JSON, keys in the order above.
std::string EncodePrivacyRecord(const PrivacyRecord& record);

// Parses EncodePrivacyRecord's form. InvalidArgument naming the problem for text that is not
// a JSON object, a missing or mistyped field, ε or a phase value out of range, δ outside
// (0, 1), an unknown accountant, or no phases; also if the recorded ε is below what the
// accountant computes from the recorded phases (a record cannot claim more privacy than
// its own numbers give).
absl::StatusOr<PrivacyRecord> DecodePrivacyRecord(const std::string& json);

// The record in `metadata`: nullopt if there is none, DecodePrivacyRecord's error (naming
// the key) if there is a bad one.
absl::StatusOr<std::optional<PrivacyRecord>> FindPrivacyRecord(const SafetensorsMetadata& metadata);

// Sets (or replaces) the record in `metadata`, other keys kept in order.
void SetPrivacyRecord(const PrivacyRecord& record, SafetensorsMetadata* metadata);

// One line for people: "eps=4.00 delta=1e-05 sigma=0.93 C=1 q=0.0016 steps=1000
// accountant=rdp-poisson-sgm" (with several phases: their count and the steps in all), or
// "not private" for no record.
std::string DescribePrivacy(const std::optional<PrivacyRecord>& record);

}  // namespace wxp::dp

#endif  // WXP_COMMON_DP_RECORD_H_
