// Loading the adapters a wxpctl command works on, as flat fp32 vectors that share one schema.
#ifndef WXP_CLIENT_ADMIN_EXPERTS_H_
#define WXP_CLIENT_ADMIN_EXPERTS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/adapter.h"

namespace wxp::admin {

struct ExpertSet {
  std::vector<std::vector<float>> vectors;  // one flat fp32 vector per expert
  std::vector<int64_t> tensor_sizes;        // numel per tensor, in schema order
  std::optional<Adapter> template_adapter;  // the first adapter (schema, config), if loaded
  std::string description;                  // for progress lines
};

// Loads adapters (PEFT dirs or .safetensors files). InvalidArgument naming the adapter whose
// schema differs from the first one's, and the difference.
absl::StatusOr<ExpertSet> LoadExperts(const std::vector<std::string>& paths);

// `count` random experts of `params` parameters (one tensor). InvalidArgument if count < 1
// or params < 1.
absl::StatusOr<ExpertSet> RandomExperts(int count, int64_t params, uint64_t seed);

// Writes `values` as a PEFT directory with the schema and config of `like`.
absl::Status WriteLike(const Adapter& like, const std::vector<float>& values,
                       const std::string& dir);

}  // namespace wxp::admin

#endif  // WXP_CLIENT_ADMIN_EXPERTS_H_
