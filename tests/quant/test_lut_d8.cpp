// d8 LUT entries: the decode rule against a double computation, each row's entries sorted with
// its labels renumbered so that the dequantized layer is the fp16 one up to half a grid step, the
// grid no coarser than the widest gap / 254, finer than q8's on heavy-tailed wide rows, and the
// stored bits q8's.
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

TEST(LutD8, DecodeIsTheExactSumRoundedToFp32ThenFp16) {
  // |lo|, step <= 1 and points < 2^16: lo + step * point is exact in double (its bits span
  // less than 53), so one rounding to fp32 and one to fp16 is the rule.
  testing::SyntheticRng rng(90);
  for (int t = 0; t < 20000; ++t) {
    const uint16_t lo = float_to_half(static_cast<float>(rng.normal() * 0.3));
    const uint16_t step = float_to_half(static_cast<float>(rng.uniform() * 1e-2));
    const int64_t point = static_cast<int64_t>(rng.next() % 65536);
    const double exact = static_cast<double>(half_to_float(lo)) +
                         static_cast<double>(half_to_float(step)) * static_cast<double>(point);
    ASSERT_EQ(lut_d8_entry(lo, step, point), float_to_half(static_cast<float>(exact)))
        << half_to_float(lo) << " + " << half_to_float(step) << " * " << point;
  }
}

// Rows of 1..8 bits with Student-t entries (a few far out, most crowded in the middle).
LutLayer heavy_tailed_layer(int64_t rows, int64_t cols, uint64_t seed) {
  LutLayer l = testing::random_lut_layer(rows, cols, seed, true);
  testing::SyntheticRng rng(seed + 1);
  for (auto& c : l.codebook) c = float_to_half(static_cast<float>(0.02 * rng.student_t(2.0)));
  return l;
}

TEST(LutD8, SortedEntriesAndTheSameLayerUpToHalfAStep) {
  const LutLayer original = heavy_tailed_layer(48, 40, 91);
  const Tensor w0 = dequantize(original);
  LutLayer l = original;
  encode_codebook_d8(l);
  EXPECT_EQ(lut_entries(l), LutEntries::kD8);
  const Tensor w1 = dequantize(l);
  LutLayer q = original;
  encode_codebook_q8(q);
  const Tensor wq = dequantize(q);
  double d8_error = 0.0, q8_error = 0.0;
  for (int64_t i = 0; i < l.rows; ++i) {
    const int64_t first = l.codebook_offset[i], end = l.codebook_offset[i + 1];
    std::vector<double> e;
    for (int64_t k = first; k < end; ++k) e.push_back(half_to_float(original.codebook[k]));
    std::sort(e.begin(), e.end());
    double gap = 0.0;
    for (size_t k = 1; k < e.size(); ++k) gap = std::max(gap, e[k] - e[k - 1]);
    const double s = half_to_float(l.codebook_q8_grid[2 * i + 1]);
    EXPECT_LE(s, gap / 254.0 * (1.0 + 1.0 / 1024.0) + std::ldexp(1.0, -24)) << "row " << i;
    for (int64_t k = first + 1; k < end; ++k)
      ASSERT_LE(half_to_float(l.codebook[k - 1]), half_to_float(l.codebook[k])) << "row " << i;
    for (int64_t j = 0; j < l.cols; ++j) {
      const double v = w0.at(i, j), a = half_to_float(l.alpha[j]);
      // Half a step (in the scaled space, so / alpha) plus the fp16 rounding of the entry.
      ASSERT_LE(std::fabs(w1.at(i, j) - v), (0.5 * s + std::ldexp(std::fabs(v * a) + s, -10)) / a)
          << "row " << i << " column " << j;
      d8_error += (w1.at(i, j) - v) * (w1.at(i, j) - v);
      q8_error += (wq.at(i, j) - v) * (wq.at(i, j) - v);
    }
  }
  std::printf("heavy-tailed rows of 1..8 bits: squared error d8 %.4g, q8 %.4g\n", d8_error,
              q8_error);
  EXPECT_LT(d8_error, 0.5 * q8_error);
}

TEST(LutD8, StoredBitsAreQ8sAndAMovedEntryIsRefused) {
  LutLayer l = heavy_tailed_layer(16, 64, 92);
  encode_codebook_d8(l);
  int64_t expected = lut_layer_overhead_bits(64, true);
  for (uint8_t b : l.bits) expected += lut_row_cost_bits(64, b, LutEntries::kD8);
  EXPECT_EQ(stored_bits(pack(l)), expected);
  EXPECT_EQ(lut_row_cost_bits(576, 6, LutEntries::kD8), lut_row_cost_bits(576, 6, LutEntries::kQ8));
  const LutLayer back = unpack(pack(l));
  EXPECT_TRUE(back.d8);
  EXPECT_EQ(back.codebook, l.codebook);
  LutLayer moved = l;
  moved.codebook_q8[l.codebook_offset[3] + 1] += 1;  // every later entry of row 3 moves
  EXPECT_THROW(pack(moved), Error);
}

}  // namespace
}  // namespace skim::quant
