#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "src/core/half.h"

namespace skim {
namespace {

// Independent reference: decode a half by its definition, value = (-1)^s * 2^(e-15) * (1 + m/1024).
double half_by_definition(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  const double sign = s ? -1.0 : 1.0;
  if (e == 0) return sign * std::ldexp(m, -24);
  if (e == 31)
    return m ? std::numeric_limits<double>::quiet_NaN()
             : sign * std::numeric_limits<double>::infinity();
  return sign * std::ldexp(1024 + m, e - 25);
}

TEST(Half, EveryHalfDecodesByDefinition) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const double ref = half_by_definition(static_cast<uint16_t>(h));
    const float got = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      EXPECT_EQ(static_cast<double>(got), ref) << h;
    }
  }
}

TEST(Half, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t x = static_cast<uint16_t>(h);
    if (std::isnan(half_to_float(x))) continue;
    EXPECT_EQ(float_to_half(half_to_float(x)), x) << h;
  }
}

// Rounding to nearest even, checked against a search over all halves for the nearest value.
TEST(Half, RoundsToNearestEven) {
  const float samples[] = {
      1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 65519.0f, 65520.0f,  1e-8f,   2.9802322e-8f, 3.0e-8f,
      5.96e-8f,           -0.3333333f,        6.1e-5f,  1234.567f, -7.0e-6f};
  for (float f : samples) {
    double best = std::numeric_limits<double>::infinity();
    uint16_t best_h = 0;
    for (uint32_t h = 0; h < 0x7c01; ++h) {  // non-negative finite halves and +inf
      const uint16_t sh = static_cast<uint16_t>(h | (f < 0 ? 0x8000u : 0u));
      double v = half_by_definition(sh);
      double d = std::fabs(v - static_cast<double>(f));
      if (std::isinf(v)) d = std::fabs(f) >= 65520.0f ? 0.0 : std::numeric_limits<double>::max();
      if (d < best || (d == best && (sh & 1u) == 0)) {
        best = d;
        best_h = sh;
      }
    }
    EXPECT_EQ(float_to_half(f), best_h) << f;
  }
}

TEST(BFloat16, TruncationAndRounding) {
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xc000), -2.0f);
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even gives 1.0.
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

}  // namespace
}  // namespace skim
