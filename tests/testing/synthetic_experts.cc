#include "tests/testing/synthetic_experts.h"

#include "absl/strings/str_cat.h"
#include "common/synthetic.h"

namespace wxp::proc {

Schema SmallLoraSchema() {
  return Schema({{"base_model.model.layer.q_proj.lora_A.weight", DType::kF32, {4, 30}},
                 {"base_model.model.layer.q_proj.lora_B.weight", DType::kF32, {40, 4}}});
}

absl::StatusOr<SavedExperts> SaveRandomExperts(const Schema& schema, int count, uint64_t seed,
                                               const std::string& root) {
  SavedExperts out;
  out.values = MakeRandomExperts(count, static_cast<int64_t>(schema.total_params()), seed);
  for (int i = 0; i < count; ++i) {
    Adapter a;
    a.schema = schema;
    a.values = out.values[i];
    out.dirs.push_back(absl::StrCat(root, "/expert", i));
    if (absl::Status s = SaveAdapterDir(a, out.dirs.back()); !s.ok()) return s;
  }
  return out;
}

absl::StatusOr<std::vector<float>> SaveHiddenOptimum(const Schema& schema,
                                                     const std::vector<std::vector<float>>& experts,
                                                     uint64_t seed, const std::string& path) {
  absl::StatusOr<std::vector<float>> values = MakeHiddenOptimum(experts, seed, 0.0005);
  if (!values.ok()) return values.status();
  Adapter optimum;
  optimum.schema = schema;
  optimum.values = *values;
  if (absl::Status s = SaveSafetensors(optimum, path); !s.ok()) return s;
  return values;
}

absl::StatusOr<std::string> BlobIdOf(const Schema& schema, const std::vector<float>& values) {
  Adapter a;
  a.schema = schema;
  a.values = values;
  return BlobId(a);
}

std::vector<std::string> Pick(const std::vector<std::string>& dirs, const std::vector<int>& which) {
  std::vector<std::string> out;
  for (int i : which) out.push_back(dirs[i]);
  return out;
}

}  // namespace wxp::proc
