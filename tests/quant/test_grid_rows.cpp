// Grid rows: the grid fit against exhaustive search over (lo, step), the grid refinement against
// its two normal equations, and a skim layer with grid rows: q8 codes 0, 1, 2, ..., stored bits
// equal to the allocator's cost, the dequantized layer what the report measured.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "src/core/half.h"
#include "src/quant/grid_fit.h"
#include "src/quant/hessian.h"
#include "src/quant/layer_error.h"
#include "src/quant/packed_layer.h"
#include "src/quant/scale_training.h"
#include "src/quant/skim_layer.h"
#include "tests/quant/damped_hessian.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

using testing::SyntheticRng;

using testing::damped_hessian;

// sum_j g_j (u_j - nearest grid point)^2, the nearest point found by scanning all k points.
double naive_grid_error(const std::vector<float>& u, const std::vector<float>& g, int k, double lo,
                        double step) {
  double s = 0.0;
  for (size_t j = 0; j < u.size(); ++j) {
    double best = std::numeric_limits<double>::infinity();
    for (int q = 0; q < k; ++q) best = std::min(best, std::fabs(u[j] - (lo + step * q)));
    s += g[j] * best * best;
  }
  return s;
}

TEST(GridFit, WithinOnePercentOfExhaustiveSearch) {
  SyntheticRng rng(71);
  double worst = 0.0;
  for (int trial = 0; trial < 12; ++trial) {
    const int k = 2 << (trial % 3);  // 2, 4, 8 levels
    std::vector<float> u(160), g(160);
    for (size_t j = 0; j < u.size(); ++j) {
      // Heavy tails: a normal divided by a random scale.
      u[j] = static_cast<float>(rng.normal() / std::sqrt(0.2 + rng.uniform()));
      g[j] = static_cast<float>(0.1 + rng.uniform());
    }
    const GridFit fit = fit_grid(u, g, k);
    EXPECT_NEAR(fit.objective, naive_grid_error(u, g, k, fit.lo, fit.step), 1e-9 * fit.objective);
    for (size_t j = 0; j < u.size(); ++j) {  // labels are the nearest points
      const double d = std::fabs(u[j] - (fit.lo + fit.step * fit.labels[j]));
      for (int q = 0; q < k; ++q)
        ASSERT_LE(d, std::fabs(u[j] - (fit.lo + fit.step * q)) + 1e-9) << trial << " " << j;
    }
    const auto [mn, mx] = std::minmax_element(u.begin(), u.end());
    double best = std::numeric_limits<double>::infinity();
    for (int a = 0; a <= 200; ++a)
      for (int b = 1; b <= 200; ++b) {
        const double lo = *mn + (*mx - *mn) * 0.6 * a / 200.0;
        const double step = (*mx - *mn) / (k - 1) * 1.2 * b / 200.0;
        best = std::min(best, naive_grid_error(u, g, k, lo, step));
      }
    worst = std::max(worst, fit.objective / best - 1.0);
    EXPECT_LE(fit.objective, best * 1.01) << "trial " << trial << " k " << k;
  }
  std::printf("grid fit against a 200 x 200 search: worst excess %.3f%%\n", 100.0 * worst);
}

TEST(GridFit, RecoversAnExactGridAndOneLevelIsTheWeightedMean) {
  std::vector<float> u, g;
  for (int j = 0; j < 64; ++j) {
    u.push_back(static_cast<float>(-0.25 + 0.0625 * (j * 7 % 16)));  // every point of 16 used
    g.push_back(static_cast<float>(1 + j % 3));
  }
  const GridFit fit = fit_grid(u, g, 16);
  EXPECT_NEAR(fit.lo, -0.25, 1e-6);
  EXPECT_NEAR(fit.step, 0.0625, 1e-6);
  EXPECT_NEAR(fit.objective, 0.0, 1e-10);
  const GridFit one = fit_grid(u, g, 1);
  double sw = 0.0, swu = 0.0;
  for (size_t j = 0; j < u.size(); ++j) {
    sw += g[j];
    swu += g[j] * u[j];
  }
  EXPECT_NEAR(one.lo, swu / sw, 1e-12);
}

// The refined grid row is evenly spaced and solves A^T H (A x - w) = 0 for x = (lo, step), with
// A[j] = (1, l_j) / alpha_j: checked with dense double loops.
TEST(GridRows, RefinementSolvesTheTwoNormalEquations) {
  const auto L = testing::make_synthetic_layer(6, 40, 72);
  const Tensor w({L.rows, L.cols}, L.w);
  const Tensor h = damped_hessian(L);
  SyntheticRng rng(73);
  std::vector<float> alpha(L.cols);
  for (auto& a : alpha)
    a = half_to_float(float_to_half(static_cast<float>(std::exp(0.3 * rng.normal()))));
  const int k = 8;
  // Labels that grow with the scaled weight, as a grid's do (random ones may want a negative
  // step, which the refinement refuses).
  std::vector<uint8_t> labels(L.rows * L.cols), grid(L.rows);
  for (int64_t i = 0; i < L.rows; ++i) {
    float mn = 1e30f, mx = -1e30f;
    for (int64_t j = 0; j < L.cols; ++j) {
      mn = std::min(mn, alpha[j] * w.at(i, j));
      mx = std::max(mx, alpha[j] * w.at(i, j));
    }
    for (int64_t j = 0; j < L.cols; ++j)
      labels[i * L.cols + j] =
          static_cast<uint8_t>(std::lround((alpha[j] * w.at(i, j) - mn) / (mx - mn) * (k - 1)));
  }
  for (int64_t i = 0; i < L.rows; ++i) grid[i] = i % 2;
  std::vector<std::vector<double>> lut(L.rows, std::vector<double>(k, 0.0));
  refine_luts_full_hessian(w, h, labels, alpha, lut, grid);
  for (int64_t i = 1; i < L.rows; i += 2) {
    const double lo = lut[i][0], step = lut[i][1] - lut[i][0];
    ASSERT_GT(step, 0.0) << "row " << i << " kept its given LUT";
    for (int q = 0; q < k; ++q) EXPECT_NEAR(lut[i][q], lo + step * q, 1e-12) << i;
    std::vector<double> r(L.cols);  // H (A x - w)
    for (int64_t a = 0; a < L.cols; ++a) {
      double s = 0.0;
      for (int64_t b = 0; b < L.cols; ++b)
        s += h.at(a, b) * ((lo + step * labels[i * L.cols + b]) / alpha[b] - w.at(i, b));
      r[a] = s;
    }
    double g0 = 0.0, g1 = 0.0, scale = 0.0;
    for (int64_t j = 0; j < L.cols; ++j) {
      g0 += r[j] / alpha[j];
      g1 += r[j] * labels[i * L.cols + j] / alpha[j];
      scale = std::max(scale, static_cast<double>(std::fabs(h.at(j, j) * w.at(i, j))));
    }
    EXPECT_NEAR(g0, 0.0, 1e-6 * scale * L.cols) << "row " << i;
    EXPECT_NEAR(g1, 0.0, 1e-6 * scale * L.cols * k) << "row " << i;
  }
}

TEST(GridRows, SkimLayerWithGridRowsStoresWhatTheAllocationPaid) {
  const auto L = testing::make_synthetic_layer(48, 128, 74);
  const Tensor w({L.rows, L.cols}, L.w);
  const Tensor h = damped_hessian(L);
  SkimOptions o;
  o.bits = 5.0;
  o.b_max = 7;
  o.allocation.entries = LutEntries::kQ8;
  o.grid_rows = true;
  SkimLayerResult r = quantize_skim_layer(w, h, o);
  int grid_rows = 0;
  for (uint8_t c : r.allocation.bits) grid_rows += choice_is_grid(c);
  std::printf("5 bits, 128 columns: %d of 48 rows are grid rows\n", grid_rows);
  EXPECT_GT(grid_rows, 0);  // at 128 columns a 5-bit LUT costs 2.25 bits per weight
  for (int64_t i = 0; i < L.rows; ++i) {
    EXPECT_EQ(r.layer.bits[i], choice_width(r.allocation.bits[i]));
    EXPECT_EQ(is_grid_row(r.layer, i), choice_is_grid(r.allocation.bits[i]));
  }
  const double before_q8 = layer_error(w, dequantize(r.layer), h);
  EXPECT_NEAR(before_q8, r.scale.error_final, 1e-5 * before_q8);
  const std::vector<uint16_t> f16 = r.layer.codebook;
  encode_codebook_q8(r.layer);
  // A grid row keeps codes 0, 1, 2, ... and its entries move by fp16 roundings of lo and step
  // only: a few hundredths of a step.
  for (int64_t i = 0; i < L.rows; ++i) {
    if (!is_grid_row(r.layer, i)) continue;
    const int64_t first = r.layer.codebook_offset[i], end = r.layer.codebook_offset[i + 1];
    const double step = half_to_float(f16[first + 1]) - half_to_float(f16[first]);
    for (int64_t e = first; e < end; ++e) {
      ASSERT_EQ(r.layer.codebook_q8[e], e - first) << "row " << i;
      EXPECT_NEAR(half_to_float(r.layer.codebook[e]), half_to_float(f16[e]), 0.05 * step)
          << "row " << i << " entry " << e - first;
    }
  }
  const PackedLutLayer p = pack(r.layer);
  EXPECT_EQ(stored_bits(p), r.allocation.cost_bits);  // 128 columns: no label padding
  EXPECT_EQ(lut_stored_bits(r.layer), r.allocation.cost_bits);
  EXPECT_LE(r.allocation.cost_bits, static_cast<int64_t>(5.0 * L.rows * L.cols));
}

}  // namespace
}  // namespace skim::quant
