// 8-bit LUT entries: the grid covers each row, every entry moves to its nearest grid point
// (brute force over all 256 codes), labels stay, the stored bits are the allocator's cost, and
// a layer whose codebook is not its codes decoded is refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "src/core/error.h"
#include "src/core/half.h"
#include "src/quant/lut_layer.h"
#include "src/quant/packed_layer.h"
#include "tests/quant/random_lut_layer.h"

namespace skim::quant {
namespace {

// random_lut_layer with rows at different scales (sd 0.005 .. 50); row 3
// has one value repeated (a zero-width grid) and row 5 only negative entries.
LutLayer random_layer(int64_t rows, int64_t cols, uint64_t seed) {
  LutLayer l = testing::random_lut_layer(rows, cols, seed, true);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = l.codebook_offset[i]; k < l.codebook_offset[i + 1]; ++k) {
      float v = half_to_float(l.codebook[k]) * std::pow(10.0f, static_cast<float>(i % 5) - 1.0f);
      if (i % 8 == 3) v = 0.0123f;
      if (i % 8 == 5) v = -std::fabs(v) - 0.01f;
      l.codebook[k] = float_to_half(v);
    }
  return l;
}

double decoded(uint16_t lo, uint16_t step, int c) {
  return half_to_float(lut_q8_entry(lo, step, static_cast<uint8_t>(c)));
}

TEST(LutQ8, EveryEntryMovesToItsNearestPointOfACoveringGrid) {
  const LutLayer original = random_layer(40, 24, 3);
  LutLayer l = original;
  encode_codebook_q8(l);
  ASSERT_EQ(l.codebook_q8.size(), l.codebook.size());
  ASSERT_EQ(l.codebook_q8_grid.size(), 2 * static_cast<size_t>(l.rows));
  EXPECT_EQ(l.labels, original.labels);
  EXPECT_EQ(l.bits, original.bits);
  EXPECT_EQ(l.alpha, original.alpha);
  for (int64_t i = 0; i < l.rows; ++i) {
    const int64_t first = l.codebook_offset[i], end = l.codebook_offset[i + 1];
    const uint16_t lo = l.codebook_q8_grid[2 * i], step = l.codebook_q8_grid[2 * i + 1];
    double mn = INFINITY, mx = -INFINITY;
    for (int64_t k = first; k < end; ++k) {
      mn = std::min<double>(mn, half_to_float(original.codebook[k]));
      mx = std::max<double>(mx, half_to_float(original.codebook[k]));
    }
    const double s = half_to_float(step);
    // The grid covers the row and is no coarser than needed (step rounded up by < 1 fp16 ulp,
    // 2^-24 absolute among fp16 subnormals).
    EXPECT_LE(half_to_float(lo), mn) << "row " << i;
    EXPECT_GE(half_to_float(lo) + 255.0 * s, mx) << "row " << i;
    EXPECT_LE(s, (mx - half_to_float(lo)) / 255.0 * (1.0 + 1.0 / 1024.0) + std::ldexp(1.0, -24))
        << "row " << i;
    for (int64_t k = first; k < end; ++k) {
      const double v = half_to_float(original.codebook[k]);
      const double got = half_to_float(l.codebook[k]);
      ASSERT_EQ(l.codebook[k], lut_q8_entry(lo, step, l.codebook_q8[k]));
      double nearest = INFINITY;
      for (int c = 0; c < 256; ++c)
        nearest = std::min(nearest, std::fabs(decoded(lo, step, c) - v));
      ASSERT_EQ(std::fabs(got - v), nearest) << "row " << i << " entry " << k - first;
      // Half a step, plus the fp16 rounding of the decoded value.
      ASSERT_LE(std::fabs(got - v), 0.5 * s + std::ldexp(std::fabs(v) + s, -10)) << "row " << i;
    }
    if (mn == mx) {  // zero-width grid: exact
      EXPECT_EQ(half_to_float(l.codebook[first]), mn);
    }
  }
}

TEST(LutQ8, StoredBitsAreTheAllocatorsCost) {
  const int64_t cols = 64;  // a multiple of 8: no label padding
  LutLayer l = random_layer(16, cols, 4);
  encode_codebook_q8(l);
  int64_t expected = lut_layer_overhead_bits(cols, true);
  for (uint8_t b : l.bits) expected += lut_row_cost_bits(cols, b, LutEntries::kQ8);
  EXPECT_EQ(stored_bits(pack(l)), expected);
  EXPECT_EQ(lut_row_cost_bits(576, 4, LutEntries::kQ8), 576 * 4 + 16 * 8 + 32 + 8);
  // Pack and unpack keep the codes.
  const LutLayer back = unpack(pack(l));
  EXPECT_EQ(back.codebook_q8, l.codebook_q8);
  EXPECT_EQ(back.codebook_q8_grid, l.codebook_q8_grid);
  EXPECT_EQ(back.codebook, l.codebook);
}

TEST(LutQ8, ACodebookThatIsNotItsCodesDecodedIsRefused) {
  LutLayer l = random_layer(9, 10, 5);
  encode_codebook_q8(l);
  EXPECT_NO_THROW(pack(l));
  LutLayer moved = l;
  moved.codebook[7] = float_to_half(half_to_float(moved.codebook[7]) + 1.0f);
  EXPECT_THROW(pack(moved), Error);
  LutLayer negative_step = l;
  negative_step.codebook_q8_grid[1] = float_to_half(-1.0f);
  EXPECT_THROW(pack(negative_step), Error);
  LutLayer short_codes = l;
  short_codes.codebook_q8.pop_back();
  EXPECT_THROW(pack(short_codes), Error);
}

}  // namespace
}  // namespace skim::quant
