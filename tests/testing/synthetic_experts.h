// Experts and a hidden optimum on disk for tests that start real wxp-agent processes with the
// synthetic evaluator: the files --expert and --synthetic_optimum take.
#ifndef WXP_TESTS_TESTING_SYNTHETIC_EXPERTS_H_
#define WXP_TESTS_TESTING_SYNTHETIC_EXPERTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/adapter.h"

namespace wxp::proc {

// One LoRA module of rank 4 (lora_A 4x30, lora_B 40x4: 280 fp32 values), named as PEFT
// names a module's tensors.
Schema SmallLoraSchema();

// `count` random experts (MakeRandomExperts with `seed`) in `schema`, each saved as a PEFT
// adapter directory `root`/expert<i> (i from 0). `root` must exist.
struct SavedExperts {
  std::vector<std::vector<float>> values;
  std::vector<std::string> dirs;  // dirs[i] holds values[i]
};
absl::StatusOr<SavedExperts> SaveRandomExperts(const Schema& schema, int count, uint64_t seed,
                                               const std::string& root);

// The hidden optimum the synthetic evaluator scores against (MakeHiddenOptimum over
// `experts` with `seed`, 0.0005 off their span), saved in `schema` as the safetensors file
// `path`. Returns its values.
absl::StatusOr<std::vector<float>> SaveHiddenOptimum(const Schema& schema,
                                                     const std::vector<std::vector<float>>& experts,
                                                     uint64_t seed, const std::string& path);

// The blob id of `values` in `schema` (the sha256 of its safetensors bytes): how the server
// and the runner name an expert or a position.
absl::StatusOr<std::string> BlobIdOf(const Schema& schema, const std::vector<float>& values);

// The subset of `dirs` an agent contributes: dirs[i] for each i of `which`, in that order.
std::vector<std::string> Pick(const std::vector<std::string>& dirs, const std::vector<int>& which);

}  // namespace wxp::proc

#endif  // WXP_TESTS_TESTING_SYNTHETIC_EXPERTS_H_
