// The full-Hessian LUT refinement: the CPU's normal equations against dense double loops, and the
// refined LUT a stationary point of the row error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "src/core/half.h"
#include "src/quant/lut_refinement.h"
#include "tests/quant/damped_hessian.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

using testing::damped_hessian;
using testing::SyntheticRng;

std::vector<float> random_alpha(int64_t cols, SyntheticRng& rng) {
  std::vector<float> alpha(static_cast<size_t>(cols));
  for (auto& a : alpha)
    a = half_to_float(float_to_half(static_cast<float>(std::exp(0.3 * rng.normal()))));
  return alpha;
}

// a = P H P^T and rhs = P H w^T of one row in double, straight from the definition.
void dense_system(const Tensor& w, const Tensor& h, std::span<const uint8_t> labels,
                  std::span<const float> alpha, int64_t row, int k, std::vector<double>& a,
                  std::vector<double>& rhs) {
  const int64_t cols = w.dim(1);
  a.assign(static_cast<size_t>(k * k), 0.0);
  rhs.assign(static_cast<size_t>(k), 0.0);
  for (int64_t j = 0; j < cols; ++j) {
    const int q = labels[row * cols + j];
    for (int64_t l = 0; l < cols; ++l) {
      const double v = double{h.at(j, l)} / alpha[j];
      a[q * k + labels[row * cols + l]] += v / alpha[l];
      rhs[q] += v * w.at(row, l);
    }
  }
}

// Rows of LUT sizes 2..16 from a block in the middle of the layer, their lines at padded
// offsets: each row's system equals the dense one to fp32 GEMM rounding (1e-5 of its largest).
TEST(LutRefinement, CpuSystemsMatchDenseLoops) {
  const auto L = testing::make_synthetic_layer(12, 70, 81);
  const Tensor w({L.rows, L.cols}, L.w);
  const Tensor h = damped_hessian(L);
  SyntheticRng rng(82);
  const std::vector<float> alpha = random_alpha(L.cols, rng);
  std::vector<int> k(static_cast<size_t>(L.rows));
  for (int64_t i = 0; i < L.rows; ++i) k[i] = 2 << (i % 4);
  std::vector<uint8_t> labels(static_cast<size_t>(L.rows * L.cols));
  for (int64_t i = 0; i < L.rows; ++i)
    for (int64_t j = 0; j < L.cols; ++j)
      labels[i * L.cols + j] = static_cast<uint8_t>(rng.next() % (k[i] - (i == 5 ? 1 : 0)));
  const int64_t first = 3, count = 7;
  std::vector<int64_t> line_off{0}, a_off{0}, rhs_off{0};
  for (int64_t r = 0; r < count; ++r) {
    const int64_t kr = k[first + r];
    line_off.push_back(line_off.back() + kr + r % 3);
    a_off.push_back(a_off.back() + kr * kr);
    rhs_off.push_back(rhs_off.back() + kr);
  }
  std::vector<double> a, rhs;
  cpu_refine_systems({w, h, labels, alpha, k})({first, count, line_off, a_off, rhs_off}, a, rhs);
  size_t ao = 0, ro = 0;
  std::vector<double> da, drhs;
  for (int64_t r = 0; r < count; ++r) {
    const int ki = k[first + r];
    dense_system(w, h, labels, alpha, first + r, ki, da, drhs);
    double scale = 0.0;
    for (const double v : da) scale = std::max(scale, std::fabs(v));
    for (const double v : drhs) scale = std::max(scale, std::fabs(v));
    ASSERT_LE(ao + da.size(), a.size());
    ASSERT_LE(ro + drhs.size(), rhs.size());
    for (size_t e = 0; e < da.size(); ++e)
      EXPECT_NEAR(a[ao + e], da[e], 1e-5 * scale) << "row " << first + r << " entry " << e;
    for (size_t e = 0; e < drhs.size(); ++e)
      EXPECT_NEAR(rhs[ro + e], drhs[e], 1e-5 * scale) << "row " << first + r << " entry " << e;
    ao += da.size();
    ro += drhs.size();
  }
  EXPECT_EQ(ao, a.size());
  EXPECT_EQ(ro, rhs.size());
}

// The refined LUT is a stationary point of the convex row error: P H (P^T c - w) = 0 with
// P[k][j] = [l_j = k] / alpha_j, checked with dense double loops.
TEST(LutRefinement, RefinedLutSolvesTheNormalEquations) {
  const auto L = testing::make_synthetic_layer(5, 48, 54);
  const Tensor w({L.rows, L.cols}, L.w);
  const Tensor h = damped_hessian(L);
  SyntheticRng rng(55);
  const std::vector<float> alpha = random_alpha(L.cols, rng);
  std::vector<uint8_t> labels(L.rows * L.cols);
  std::vector<std::vector<double>> lut(L.rows, std::vector<double>(4, 0.0));
  for (auto& l : labels) l = static_cast<uint8_t>(rng.next() % 4);
  refine_luts_full_hessian(w, h, labels, alpha, lut);
  for (int64_t i = 0; i < L.rows; ++i) {
    std::vector<double> r(L.cols);  // H (P^T c - w)
    for (int64_t a = 0; a < L.cols; ++a) {
      double s = 0.0;
      for (int64_t b = 0; b < L.cols; ++b)
        s += h.at(a, b) * (lut[i][labels[i * L.cols + b]] / alpha[b] - w.at(i, b));
      r[a] = s;
    }
    double scale = 0.0;
    for (int64_t a = 0; a < L.cols; ++a)
      scale = std::max(scale, static_cast<double>(std::fabs(h.at(a, a) * w.at(i, a))));
    for (int q = 0; q < 4; ++q) {
      double g = 0.0;
      for (int64_t j = 0; j < L.cols; ++j)
        if (labels[i * L.cols + j] == q) g += r[j] / alpha[j];
      EXPECT_NEAR(g, 0.0, 1e-6 * scale * L.cols) << "row " << i << " cluster " << q;
    }
  }
}

}  // namespace
}  // namespace skim::quant
