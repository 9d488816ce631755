#include "common/alpha_blob.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace wxp {

Schema AlphaSchema(int64_t dimension) {
  return Schema({{kAlphaTensorName, DType::kF32, {dimension}}});
}

absl::StatusOr<std::string> AlphaBlobBytes(absl::Span<const float> alpha) {
  if (alpha.empty()) return absl::InvalidArgumentError("alpha is empty");
  for (size_t i = 0; i < alpha.size(); ++i) {
    if (!std::isfinite(alpha[i])) {
      return absl::InvalidArgumentError(absl::StrCat("alpha[", i, "] is not finite"));
    }
  }
  Adapter a;
  a.schema = AlphaSchema(static_cast<int64_t>(alpha.size()));
  a.values.assign(alpha.begin(), alpha.end());
  return SerializeAdapter(a);
}

absl::StatusOr<std::string> AlphaBlobId(absl::Span<const float> alpha) {
  WXP_ASSIGN_OR_RETURN(std::string bytes, AlphaBlobBytes(alpha));
  return Sha256Hex(bytes);
}

absl::StatusOr<std::vector<float>> AlphaFromBlobBytes(std::string bytes) {
  WXP_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::FromBytes(std::move(bytes)));
  Adapter a = AdapterFromSafetensors(file);
  const auto& t = a.schema.tensors();
  if (t.size() != 1 || t[0].name != kAlphaTensorName || t[0].dtype != DType::kF32 ||
      t[0].shape.size() != 1) {
    return absl::InvalidArgumentError(
        "not an alpha blob (one F32 tensor \"alpha\" of rank 1 expected)");
  }
  return std::move(a.values);
}

}  // namespace wxp
