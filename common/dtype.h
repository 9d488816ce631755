// Storage dtypes of adapter tensors (SPEC 3) and their conversion to and from fp32, the
// dtype all swarm arithmetic uses.
#ifndef WXP_COMMON_DTYPE_H_
#define WXP_COMMON_DTYPE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wxp {

enum class DType { kF32, kF16, kBF16, kF64 };

// The safetensors spelling: "F32", "F16", "BF16", "F64".
const char* DTypeName(DType dtype);
// InvalidArgument naming `name` for anything else (safetensors also has I8, BOOL, ...:
// adapters in those dtypes are not searchable in weight space).
absl::StatusOr<DType> ParseDType(absl::string_view name);
// Bytes per element.
int DTypeSize(DType dtype);

// All functions here are pure and thread-safe. Buffers hold little-endian values, may have
// any alignment and must not overlap.

// Converts n elements stored as `dtype` at `src` to fp32 (exact for F16/BF16/F32; F64
// rounds to nearest, and magnitudes beyond fp32's range become infinities).
void ToFloat32(DType dtype, const void* src, int64_t n, float* dst);
// Converts n fp32 values to `dtype` at `dst`. F16 and BF16 round to nearest, ties to even
// (F16 through its subnormals); values beyond F16's range become infinities; NaN stays NaN.
void FromFloat32(DType dtype, const float* src, int64_t n, void* dst);

// Single-value conversions, exposed for kernels and tests.
float Bf16ToFloat(uint16_t h);
uint16_t FloatToBf16(float f);
float F16ToFloat(uint16_t h);
uint16_t FloatToF16(float f);

}  // namespace wxp

#endif  // WXP_COMMON_DTYPE_H_
