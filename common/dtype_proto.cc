#include "common/dtype_proto.h"

#include "absl/strings/str_cat.h"

namespace wxp {

absl::StatusOr<DType> DTypeFromProto(wxp::v1::DType dtype) {
  switch (dtype) {
    case wxp::v1::DTYPE_F32:
      return DType::kF32;
    case wxp::v1::DTYPE_F16:
      return DType::kF16;
    case wxp::v1::DTYPE_BF16:
      return DType::kBF16;
    case wxp::v1::DTYPE_F64:
      return DType::kF64;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("dtype ", static_cast<int>(dtype), " is not F32, F16, BF16 or F64"));
  }
}

wxp::v1::DType DTypeToProto(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return wxp::v1::DTYPE_F32;
    case DType::kF16:
      return wxp::v1::DTYPE_F16;
    case DType::kBF16:
      return wxp::v1::DTYPE_BF16;
    case DType::kF64:
      return wxp::v1::DTYPE_F64;
  }
  return wxp::v1::DTYPE_UNSPECIFIED;  // unreachable: the switch covers the enum
}

absl::StatusOr<std::optional<DType>> TransportDTypeFromProto(wxp::v1::DType dtype) {
  if (dtype == wxp::v1::DTYPE_UNSPECIFIED) return std::nullopt;
  absl::StatusOr<DType> d = DTypeFromProto(dtype);
  if (!d.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("transport ", d.status().message()));
  }
  return *d;
}

}  // namespace wxp
