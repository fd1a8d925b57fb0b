#pragma once
// Textbook GPTQ pieces for the tests, written independently of the code under test: dense
// Cholesky and Gauss-Jordan inverse in double, the reference's asymmetric grid, and GPTQ one
// column at a time with every later column updated at once (optional act-order, groups of
// mixed widths and the clipping search).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "src/core/half.h"
#include "src/core/tensor.h"

namespace skim::quant::testing {

using Mat = std::vector<double>;  // row-major square or rectangular, double

// Upper U with U^T U = A (A symmetric positive definite, n x n).
inline Mat cholesky_upper(const Mat& a, int64_t n) {
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
inline Mat inverse(Mat a, int64_t n) {
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
inline Grid make_grid(double lo, double hi, int bits) {
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

inline int quant_code(double w, const Grid& g, int bits) {
  const double q = std::nearbyint(w / g.scale) + g.zero;
  return static_cast<int>(std::clamp(q, 0.0, static_cast<double>((1 << bits) - 1)));
}

// The damped, permuted H^-1's upper Cholesky factor, the way GPTQ takes it: dead columns (H_jj ==
// 0) get H_jj = 1; H += damp * mean(diag H) * I. `perm` is the processing order.
inline Mat naive_inverse_cholesky(Mat h, int64_t n, const std::vector<int64_t>& perm, double damp) {
  for (int64_t j = 0; j < n; ++j)
    if (h[j * n + j] == 0.0) h[j * n + j] = 1.0;
  Mat hp(h.size());
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < n; ++b) hp[a * n + b] = h[perm[a] * n + perm[b]];
  double mean = 0.0;
  for (int64_t j = 0; j < n; ++j) mean += hp[j * n + j];
  mean /= static_cast<double>(n);
  for (int64_t j = 0; j < n; ++j) hp[j * n + j] += damp * mean;
  return cholesky_upper(inverse(hp, n), n);
}

// The grid of one group's weights w[0, count) at `bits`; with `clip`, the range scaled by the
// factor of 0.90, 0.92, ..., 1.10 (the first of equals) with the least sum ((w - q) / d)^2.
inline Grid naive_group_grid(const double* w, const double* d, int64_t count, int bits, bool clip) {
  const auto [lo, hi] = std::minmax_element(w, w + count);
  if (!clip) return make_grid(*lo, *hi, bits);
  Grid best{};
  double best_error = 0.0;
  for (int k = 0; k <= 10; ++k) {
    const float c = static_cast<float>((90 + 2 * k) / 100.0);
    const Grid g = make_grid(c * static_cast<float>(*lo), c * static_cast<float>(*hi), bits);
    double e = 0.0;
    for (int64_t j = 0; j < count; ++j) {
      const double r = (w[j] - g.scale * (quant_code(w[j], g, bits) - g.zero)) / d[j];
      e += r * r;
    }
    if (k == 0 || e < best_error) {
      best = g;
      best_error = e;
    }
  }
  return best;
}

struct NaiveGptq {
  int bits = 4;
  int64_t group_size = 0;
  bool act_order = false;
  double damp = 0.01;
  std::vector<int> group_bits;  // empty: every group at `bits`
  bool clip = false;
};

// Naive GPTQ: one column at a time, every later column updated immediately.
// Returns the dequantized weights in the original column order.
inline Mat naive_gptq(const std::vector<float>& w_in, Mat h, int64_t m, int64_t n,
                      const NaiveGptq& o) {
  const int bits = o.bits;
  const int64_t group_size = o.group_size;
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
  if (o.act_order)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return h[a * n + a] > h[b * n + b]; });
  Mat wp(w.size());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < n; ++k) wp[i * n + k] = w[i * n + perm[k]];
  const Mat u = naive_inverse_cholesky(h, n, perm, o.damp);
  std::vector<double> d(n);
  for (int64_t j = 0; j < n; ++j) d[j] = u[j * n + j];

  Mat out(w.size());
  std::vector<Grid> grid = row_grid;
  for (int64_t j = 0; j < n; ++j) {
    const int width = o.group_bits.empty() ? bits : o.group_bits[j / group_size];
    for (int64_t i = 0; i < m; ++i) {
      if (group_size > 0 && j % group_size == 0) {
        const int64_t count = std::min(n, j + group_size) - j;
        grid[i] = naive_group_grid(&wp[i * n + j], &d[j], count, width, o.clip);
      }
      const double q = grid[i].scale * (quant_code(wp[i * n + j], grid[i], width) - grid[i].zero);
      out[i * n + perm[j]] = q;
      const double err = (wp[i * n + j] - q) / d[j];
      for (int64_t k = j + 1; k < n; ++k) wp[i * n + k] -= err * u[j * n + k];
    }
  }
  return out;
}

inline double full_error(const std::vector<float>& w, const Tensor& wq, const Mat& h, int64_t m,
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

}  // namespace skim::quant::testing
