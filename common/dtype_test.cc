#include "common/dtype.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "gtest/gtest.h"

namespace wxp {
namespace {

TEST(DTypeTest, NamesSizesAndParsing) {
  EXPECT_EQ(*ParseDType("BF16"), DType::kBF16);
  EXPECT_STREQ(DTypeName(DType::kF16), "F16");
  EXPECT_EQ(DTypeSize(DType::kF64), 8);
  auto bad = ParseDType("I8");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'I8'"), std::string::npos);
  EXPECT_FALSE(ParseDType("f32").ok());  // safetensors spells dtypes in upper case
}

TEST(DTypeTest, Bf16HandValues) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBf16(-2.0f), 0xC000);
  EXPECT_EQ(Bf16ToFloat(0x3F80), 1.0f);
  // 1 + 2^-8 is exactly half-way between bf16 1.0 (0x3F80) and 1+2^-7 (0x3F81): ties to even.
  EXPECT_EQ(FloatToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  // 1 + 3*2^-8 is half-way between 0x3F81 and 0x3F82: ties to even -> 0x3F82.
  EXPECT_EQ(FloatToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
  // Just above half-way rounds up.
  EXPECT_EQ(FloatToBf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3F81);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::nanf("")))));
  EXPECT_EQ(FloatToBf16(std::numeric_limits<float>::infinity()), 0x7F80);
  // FLT_MAX (0x7F7FFFFF) lies above the half-way point to infinity.
  EXPECT_EQ(FloatToBf16(std::numeric_limits<float>::max()), 0x7F80);
  // pi = 0x40490FDB: the dropped 0x0FDB is below half: truncates to 0x4049.
  EXPECT_EQ(FloatToBf16(3.14159265f), 0x4049);
  // A NaN whose payload lives only in the low 16 bits must not become infinity.
  uint32_t low_nan_bits = 0x7F800001u;
  float low_nan;
  std::memcpy(&low_nan, &low_nan_bits, 4);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(low_nan))));
}

TEST(DTypeTest, F16HandValues) {
  EXPECT_EQ(FloatToF16(1.0f), 0x3C00);
  EXPECT_EQ(FloatToF16(-2.0f), 0xC000);
  EXPECT_EQ(FloatToF16(65504.0f), 0x7BFF);                   // largest finite
  EXPECT_EQ(FloatToF16(65520.0f), 0x7C00);                   // half-way to 2^16 rounds to infinity
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -14)), 0x0400);      // smallest normal
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -24)), 0x0001);      // smallest subnormal
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -25)), 0x0000);      // half of it: ties to even (0)
  EXPECT_EQ(FloatToF16(3 * std::ldexp(1.0f, -25)), 0x0002);  // 1.5 ulp: ties to even (2)
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -26)), 0x0000);
  // 6.1e-5 is just below 2^-14 = 6.1035e-5: 6.1e-5 * 2^24 = 1023.41 subnormal units.
  EXPECT_EQ(FloatToF16(6.1e-5f), 0x03FF);
  EXPECT_EQ(FloatToF16(-6.1e-5f), 0x83FF);
  // 1023.5 units is half-way between the largest subnormal and the smallest normal (even).
  EXPECT_EQ(FloatToF16(1023.5f * std::ldexp(1.0f, -24)), 0x0400);
  EXPECT_EQ(FloatToF16(65519.0f), 0x7BFF);  // below half-way: stays finite
  EXPECT_EQ(FloatToF16(1e6f), 0x7C00);
  EXPECT_EQ(FloatToF16(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(FloatToF16(-0.0f), 0x8000);
  // 1/3: 0x3555 is 2^-2 * (1 + 341/1024) = 1365/4096.
  EXPECT_EQ(FloatToF16(1.0f / 3), 0x3555);
  EXPECT_EQ(F16ToFloat(0x3555), 1365.0f / 4096);
  // 1 + 2^-11 is half-way between 0x3C00 and 0x3C01: ties to even.
  EXPECT_EQ(FloatToF16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(FloatToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(F16ToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToFloat(0x03FF), 1023 * std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToFloat(0x7BFF), 65504.0f);
  EXPECT_TRUE(std::isinf(F16ToFloat(0xFC00)));
  EXPECT_TRUE(std::isnan(F16ToFloat(FloatToF16(std::nanf("")))));
  EXPECT_EQ(std::signbit(F16ToFloat(0x8000)), true);
}

TEST(DTypeTest, EveryF16AndBf16ValueRoundTripsThroughFloat) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t v = static_cast<uint16_t>(h);
    const float f16 = F16ToFloat(v), b16 = Bf16ToFloat(v);
    if (!std::isnan(f16)) {
      ASSERT_EQ(FloatToF16(f16), v) << std::hex << h;
    }
    if (!std::isnan(b16)) {
      ASSERT_EQ(FloatToBf16(b16), v) << std::hex << h;
    }
  }
}

TEST(DTypeTest, BulkConversionsRoundTrip) {
  const float values[] = {0.5f, -1.25f, 3.0f, 1024.0f};
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
    char storage[4 * 8 + 1];  // room for four f64 values after the 1-byte offset
    float back[4];
    FromFloat32(d, values, 4, storage + 1);  // deliberately unaligned
    ToFloat32(d, storage + 1, 4, back);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(back[i], values[i]) << DTypeName(d);
  }
}

}  // namespace
}  // namespace wxp
