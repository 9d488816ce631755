#include "client/admin/experts.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/synthetic.h"

namespace wxp::admin {

absl::StatusOr<ExpertSet> LoadExperts(const std::vector<std::string>& paths) {
  ExpertSet set;
  for (const std::string& path : paths) {
    absl::StatusOr<Adapter> a = LoadAdapter(path);
    if (!a.ok()) return a.status();
    if (absl::Status s = CheckFinite(*a); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
    }
    if (set.template_adapter) {
      if (absl::Status s = a->schema.CheckSame(set.template_adapter->schema); !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, " does not match ", paths[0], ": ", s.message()));
      }
    } else {
      set.tensor_sizes = a->schema.tensor_sizes();
      set.template_adapter = *a;
    }
    set.vectors.push_back(std::move(a->values));
  }
  if (set.vectors.empty()) return absl::InvalidArgumentError("no adapters given");
  set.template_adapter->values.clear();  // only its schema and config are needed
  set.description =
      absl::StrFormat("%d adapters, %d tensors", set.vectors.size(), set.tensor_sizes.size());
  return set;
}

absl::StatusOr<ExpertSet> RandomExperts(int count, int64_t params, uint64_t seed) {
  if (count < 1) return absl::InvalidArgumentError("--experts must be >= 1");
  if (params < 1) return absl::InvalidArgumentError("--params must be >= 1");
  ExpertSet set;
  set.vectors = MakeRandomExperts(count, params, seed);
  set.tensor_sizes = {params};
  set.description = "random experts";
  return set;
}

absl::Status WriteLike(const Adapter& like, const std::vector<float>& values,
                       const std::string& dir) {
  Adapter out;
  out.schema = like.schema;
  out.metadata = like.metadata;
  out.config_json = like.config_json;
  out.values = values;
  return SaveAdapterDir(out, dir);
}

}  // namespace wxp::admin
