#include "common/dtype.h"

#include <cstring>

#include "absl/strings/str_cat.h"

// safetensors stores little-endian values, which the conversions copy as-is.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "WXP assumes a little-endian host");

namespace wxp {
namespace {

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kF64:
      return "F64";
  }
  return "?";
}

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  if (name == "F64") return DType::kF64;
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported dtype '", name, "' (supported: F32, F16, BF16, F64)"));
}

int DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kF64:
      return 8;
  }
  return 0;
}

float Bf16ToFloat(uint16_t h) { return BitsFloat(static_cast<uint32_t>(h) << 16); }

uint16_t FloatToBf16(float f) {
  const uint32_t u = FloatBits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN
  // Round to nearest even on the 16 dropped bits.
  const uint32_t rounding = 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

float F16ToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return BitsFloat(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  if (exp != 0) return BitsFloat(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return BitsFloat(sign);  // signed zero
  // Subnormal: normalise the mantissa.
  int e = -1;
  do {
    ++e;
    mant <<= 1;
  } while ((mant & 0x400u) == 0);
  return BitsFloat(sign | static_cast<uint32_t>(112 - e) << 23 | ((mant & 0x3FFu) << 13));
}

uint16_t FloatToF16(float f) {
  const uint32_t u = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return sign | 0x7E00u;   // NaN
  if (abs >= 0x477FF000u) return sign | 0x7C00u;  // rounds to >= 65520: infinity
  if (abs >= 0x38800000u) {                       // normal f16 (>= 2^-14)
    const uint32_t rounded = abs + 0x0FFFu + ((abs >> 13) & 1u) - (112u << 23);
    return sign | static_cast<uint16_t>(rounded >> 13);
  }
  if (abs < 0x33000000u) return sign;  // below half the smallest subnormal: zero
  // Subnormal f16: value = mant * 2^-24; shift the implicit-one mantissa into place.
  const uint32_t exp = abs >> 23;
  const uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126 - exp;  // 14..24 for exp in [102, 112]
  uint32_t result = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (result & 1u))) ++result;
  return sign | static_cast<uint16_t>(result);
}

void ToFloat32(DType dtype, const void* src, int64_t n, float* dst) {
  const char* s = static_cast<const char*>(src);
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, s, static_cast<size_t>(n) * 4);
      return;
    case DType::kF64:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, s + 8 * i, 8);
        dst[i] = static_cast<float>(d);
      }
      return;
    case DType::kBF16:
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = dtype == DType::kBF16 ? Bf16ToFloat(h) : F16ToFloat(h);
      }
      return;
  }
}

void FromFloat32(DType dtype, const float* src, int64_t n, void* dst) {
  char* d = static_cast<char*>(dst);
  switch (dtype) {
    case DType::kF32:
      std::memcpy(d, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF64:
      for (int64_t i = 0; i < n; ++i) {
        const double v = src[i];
        std::memcpy(d + 8 * i, &v, 8);
      }
      return;
    case DType::kBF16:
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = dtype == DType::kBF16 ? FloatToBf16(src[i]) : FloatToF16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
  }
}

}  // namespace wxp
