#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <ostream>
#include <vector>

#include "src/core/error.h"
#include "src/core/half.h"
#include "src/quant/gptq.h"
#include "src/quant/rtn.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

using Mat = std::vector<double>;  // row-major square or rectangular, double

// Textbook pieces, written independently of the code under test.

// Upper U with U^T U = A (A symmetric positive definite, n x n).
Mat cholesky_upper(const Mat& a, int64_t n) {
  Mat u(a.size(), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double d = a[i * n + i];
    for (int64_t k = 0; k < i; ++k) d -= u[k * n + i] * u[k * n + i];
    u[i * n + i] = std::sqrt(d);
    for (int64_t j = i + 1; j < n; ++j) {
      double v = a[i * n + j];
      for (int64_t k = 0; k < i; ++k) v -= u[k * n + i] * u[k * n + j];
      u[i * n + j] = v / u[i * n + i];
    }
  }
  return u;
}

// A^-1 by Gauss-Jordan elimination with partial pivoting.
Mat inverse(Mat a, int64_t n) {
  Mat inv(a.size(), 0.0);
  for (int64_t i = 0; i < n; ++i) inv[i * n + i] = 1.0;
  for (int64_t c = 0; c < n; ++c) {
    int64_t p = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r * n + c]) > std::fabs(a[p * n + c])) p = r;
    for (int64_t k = 0; k < n; ++k) {
      std::swap(a[c * n + k], a[p * n + k]);
      std::swap(inv[c * n + k], inv[p * n + k]);
    }
    const double d = a[c * n + c];
    for (int64_t k = 0; k < n; ++k) {
      a[c * n + k] /= d;
      inv[c * n + k] /= d;
    }
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = a[r * n + c];
      if (f == 0.0) continue;
      for (int64_t k = 0; k < n; ++k) {
        a[r * n + k] -= f * a[c * n + k];
        inv[r * n + k] -= f * inv[c * n + k];
      }
    }
  }
  return inv;
}

struct Grid {
  double scale;
  double zero;
};

// Asymmetric grid of the GPTQ reference: range widened to include 0, scale rounded up to fp16.
Grid make_grid(double lo, double hi, int bits) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  if (lo == 0.0 && hi == 0.0) {
    lo = -1.0;
    hi = 1.0;
  }
  const double maxq = (1 << bits) - 1;
  const float s = static_cast<float>((static_cast<float>(hi) - static_cast<float>(lo)) / maxq);
  uint16_t h = float_to_half(s);
  if (half_to_float(h) < s) ++h;
  const double scale = half_to_float(h);
  return {scale, std::clamp(std::nearbyint(-lo / scale), 0.0, maxq)};
}

int quant_code(double w, const Grid& g, int bits) {
  const double q = std::nearbyint(w / g.scale) + g.zero;
  return static_cast<int>(std::clamp(q, 0.0, static_cast<double>((1 << bits) - 1)));
}

// Naive GPTQ: one column at a time, every later column updated immediately.
// Returns the dequantized weights in the original column order.
Mat naive_gptq(const std::vector<float>& w_in, Mat h, int64_t m, int64_t n, int bits,
               int64_t group_size, bool act_order, double damp) {
  Mat w(w_in.begin(), w_in.end());
  std::vector<Grid> row_grid(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) {
    const auto [lo, hi] = std::minmax_element(w.begin() + i * n, w.begin() + (i + 1) * n);
    row_grid[i] = make_grid(*lo, *hi, bits);
  }
  for (int64_t j = 0; j < n; ++j)
    if (h[j * n + j] == 0.0) {
      h[j * n + j] = 1.0;
      for (int64_t i = 0; i < m; ++i) w[i * n + j] = 0.0;
    }
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  if (act_order)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return h[a * n + a] > h[b * n + b]; });
  Mat wp(w.size()), hp(h.size());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < n; ++k) wp[i * n + k] = w[i * n + perm[k]];
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < n; ++b) hp[a * n + b] = h[perm[a] * n + perm[b]];
  double mean = 0.0;
  for (int64_t j = 0; j < n; ++j) mean += hp[j * n + j];
  mean /= static_cast<double>(n);
  for (int64_t j = 0; j < n; ++j) hp[j * n + j] += damp * mean;
  const Mat u = cholesky_upper(inverse(hp, n), n);

  Mat out(w.size());
  std::vector<Grid> grid = row_grid;
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < m; ++i) {
      if (group_size > 0 && j % group_size == 0) {
        const int64_t end = std::min(n, j + group_size);
        const auto [lo, hi] = std::minmax_element(wp.begin() + i * n + j, wp.begin() + i * n + end);
        grid[i] = make_grid(*lo, *hi, bits);
      }
      const double q = grid[i].scale * (quant_code(wp[i * n + j], grid[i], bits) - grid[i].zero);
      out[i * n + perm[j]] = q;
      const double err = (wp[i * n + j] - q) / u[j * n + j];
      for (int64_t k = j + 1; k < n; ++k) wp[i * n + k] -= err * u[j * n + k];
    }
  }
  return out;
}

double full_error(const std::vector<float>& w, const Tensor& wq, const Mat& h, int64_t m,
                  int64_t n) {
  double total = 0.0;
  std::vector<double> d(n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) d[j] = w[i * n + j] - wq.at(i, j);
    for (int64_t a = 0; a < n; ++a) {
      double s = 0.0;
      for (int64_t b = 0; b < n; ++b) s += h[a * n + b] * d[b];
      total += d[a] * s;
    }
  }
  return total;
}

struct Case {
  int bits;
  int64_t group_size;
  bool act_order;
  int64_t block_size;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "bits " << c.bits << " group " << c.group_size << " act_order " << c.act_order << " block "
      << c.block_size;
}

class GptqVsNaive : public ::testing::TestWithParam<Case> {};

TEST_P(GptqVsNaive, EqualsColumnByColumnAlgorithm) {
  const Case c = GetParam();
  const int64_t m = 48, n = 200;
  testing::SyntheticLayer layer = testing::make_synthetic_layer(m, n, 11);
  // Two dead input channels exercise the H_jj == 0 path.
  for (int64_t dead : {5, 137})
    for (int64_t k = 0; k < n; ++k) layer.h[dead * n + k] = layer.h[k * n + dead] = 0.0;
  const Tensor w({m, n}, layer.w);
  const UniformLayer q = gptq_quantize(w, layer.h,
                                       {.bits = c.bits,
                                        .group_size = c.group_size,
                                        .act_order = c.act_order,
                                        .block_size = c.block_size,
                                        .damp = 0.01});
  const Mat ref = naive_gptq(layer.w, layer.h, m, n, c.bits, c.group_size, c.act_order, 0.01);
  const Tensor got = dequantize(q);
  EXPECT_EQ(q.perm.empty(), !c.act_order);
  double max_w = 0.0;
  for (float v : layer.w) max_w = std::max(max_w, std::fabs(static_cast<double>(v)));
  int64_t mismatches = 0;
  double max_diff = 0.0;
  for (int64_t k = 0; k < m * n; ++k) {
    const double diff = std::fabs(got.data()[k] - ref[k]);
    max_diff = std::max(max_diff, diff);
    if (diff > 1e-5 * max_w) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0) << "max diff " << max_diff << " (max |w| " << max_w << ")";
  for (int64_t i = 0; i < m; ++i) {
    EXPECT_EQ(got.at(i, 5), 0.0f);
    EXPECT_EQ(got.at(i, 137), 0.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, GptqVsNaive,
                         ::testing::Values(Case{4, 0, false, 128}, Case{3, 0, true, 128},
                                           Case{4, 32, false, 128}, Case{3, 64, true, 128},
                                           Case{4, 48, false, 128},  // groups not dividing
                                           Case{2, 48, true, 32},    // groups larger than a block
                                           Case{8, 0, false, 7}));   // tiny blocks

TEST(Gptq, DiagonalHessianEqualsRtn) {
  // With H = I the error feedback is zero, so GPTQ is round-to-nearest.
  const int64_t m = 16, n = 64;
  const Tensor w({m, n}, testing::synthetic_weights(m, n, 5));
  std::vector<double> h(n * n, 0.0);
  for (int64_t j = 0; j < n; ++j) h[j * n + j] = 1.0;
  for (int64_t gs : {0, 16}) {
    const UniformLayer g = gptq_quantize(w, h, {.bits = 3, .group_size = gs});
    const UniformLayer r = rtn_quantize(w, {.bits = 3, .group_size = gs});
    EXPECT_EQ(g.codes, r.codes);
    EXPECT_EQ(g.scale, r.scale);
    EXPECT_EQ(g.zero, r.zero);
  }
}

TEST(Gptq, LowerFullErrorThanRtn) {
  const int64_t m = 96, n = 256;
  const testing::SyntheticLayer layer = testing::make_synthetic_layer(m, n, 21);
  const Tensor w({m, n}, layer.w);
  for (int bits : {3, 4}) {
    for (int64_t gs : {0, 64}) {
      for (bool act : {false, true}) {
        const double e_rtn = full_error(
            layer.w, dequantize(rtn_quantize(w, {.bits = bits, .group_size = gs})), layer.h, m, n);
        const double e_gptq =
            full_error(layer.w,
                       dequantize(gptq_quantize(
                           w, layer.h, {.bits = bits, .group_size = gs, .act_order = act})),
                       layer.h, m, n);
        SCOPED_TRACE(::testing::Message() << "bits " << bits << " group " << gs << " act " << act
                                          << ": rtn " << e_rtn << " gptq " << e_gptq);
        EXPECT_LT(e_gptq, 0.7 * e_rtn);
      }
    }
  }
}

TEST(Gptq, RejectsBadInput) {
  const int64_t n = 8;
  const Tensor w({4, n}, testing::synthetic_weights(4, n, 6));
  std::vector<double> h(n * n, 0.0);
  for (int64_t j = 0; j < n; ++j) h[j * n + j] = 1.0;
  EXPECT_THROW(gptq_quantize(w, std::span<const double>(h.data(), 10), {}), Error);
  EXPECT_THROW(gptq_quantize(w, h, {.bits = 1}), Error);
  std::vector<double> bad = h;
  bad[3] = std::nan("");
  EXPECT_THROW(gptq_quantize(w, bad, {}), Error);
  // Indefinite H: a negative eigenvalue that the damping cannot fix.
  std::vector<double> neg = h;
  neg[0] = -100.0;
  try {
    gptq_quantize(w, neg, {});
    FAIL() << "indefinite Hessian accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNumeric);
  }
}

}  // namespace
}  // namespace skim::quant
