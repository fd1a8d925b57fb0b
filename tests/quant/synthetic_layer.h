#pragma once
// Deterministic synthetic linear layers that look like LLM layers to a quantizer: heavy-tailed
// weights (Student-t rows with varying row scales) and calibration inputs with correlated
// channels, uneven channel scales and a few outlier channels (10-50x). Shared by the quant tests
// and the quant_layer benchmark. Everything comes from one seed through a portable generator,
// so the same seed gives the same layer on every platform.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/blas.h"

namespace skim::quant::testing {

// splitmix64: tiny, portable, good enough for test data.
class SyntheticRng {
 public:
  explicit SyntheticRng(uint64_t seed)
      : state_(seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1).
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    const double t = 6.283185307179586 * uniform();
    spare_ = r * std::sin(t);
    has_spare_ = true;
    return r * std::cos(t);
  }
  // Student-t with integer degrees of freedom nu (heavy tails for small nu).
  double student_t(int nu) {
    double chi2 = 0.0;
    for (int k = 0; k < nu; ++k) {
      const double z = normal();
      chi2 += z * z;
    }
    return normal() / std::sqrt(chi2 / nu);
  }

 private:
  uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

struct SyntheticOptions {
  int student_nu = 4;             // tails of the weights
  double row_scale_sigma = 0.4;   // log-normal spread of per-row weight scales
  double weight_scale = 0.02;     // typical weight magnitude
  double col_scale_sigma = 0.5;   // log-normal spread of activation channel scales
  int64_t outlier_channels = -1;  // -1: max(1, cols / 256)
  double outlier_min = 10.0;      // outlier channels get a scale in [min, max] x typical
  double outlier_max = 50.0;
  int64_t factors = 8;           // shared latent factors that correlate the channels
  double factor_strength = 0.7;  // share of a channel's variance coming from the factors
  int64_t tokens = -1;           // calibration tokens; -1: 4 * cols
};

struct SyntheticLayer {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t tokens = 0;
  std::vector<float> w;           // [rows x cols] row-major
  std::vector<float> x;           // [tokens x cols] calibration inputs (empty from the fast path)
  std::vector<double> h;          // [cols x cols] H = X^T X / N, undamped
  std::vector<double> col_scale;  // activation scale of each input channel
};

inline std::vector<float> synthetic_weights(int64_t rows, int64_t cols, uint64_t seed,
                                            const SyntheticOptions& opt = {}) {
  SyntheticRng rng(seed ^ 0x57e1647ull);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i) {
    const double s = opt.weight_scale * std::exp(opt.row_scale_sigma * rng.normal());
    for (int64_t j = 0; j < cols; ++j)
      w[static_cast<size_t>(i * cols + j)] = static_cast<float>(s * rng.student_t(opt.student_nu));
  }
  return w;
}

// Channel scales: log-normal, a few outliers at 10-50x, chosen deterministically.
inline std::vector<double> synthetic_channel_scales(int64_t cols, uint64_t seed,
                                                    const SyntheticOptions& opt = {}) {
  SyntheticRng rng(seed ^ 0xc4a77e1ull);
  std::vector<double> s(static_cast<size_t>(cols));
  for (auto& v : s) v = std::exp(opt.col_scale_sigma * rng.normal());
  const int64_t n_out = std::min(
      cols, opt.outlier_channels >= 0 ? opt.outlier_channels : std::max<int64_t>(1, cols / 256));
  for (int64_t k = 0; k < n_out; ++k) {
    const auto j = static_cast<size_t>(rng.next() % static_cast<uint64_t>(cols));
    s[j] = opt.outlier_min + (opt.outlier_max - opt.outlier_min) * rng.uniform();
  }
  return s;
}

// Full generator: X = (factor mix + independent noise) .* channel scales, H = X^T X / N.
// Costs tokens * cols^2 flops for H; fine up to a few thousand columns.
inline SyntheticLayer make_synthetic_layer(int64_t rows, int64_t cols, uint64_t seed,
                                           const SyntheticOptions& opt = {}) {
  SyntheticLayer L;
  L.rows = rows;
  L.cols = cols;
  L.tokens = opt.tokens > 0 ? opt.tokens : 4 * cols;
  L.w = synthetic_weights(rows, cols, seed, opt);
  L.col_scale = synthetic_channel_scales(cols, seed, opt);
  SyntheticRng rng(seed ^ 0xac71ull);
  const int64_t r = std::max<int64_t>(1, opt.factors);
  std::vector<double> load(static_cast<size_t>(r * cols));
  for (auto& v : load) v = rng.normal();
  const double a = std::sqrt(opt.factor_strength / static_cast<double>(r));
  const double b = std::sqrt(1.0 - opt.factor_strength);
  std::vector<double> xd(static_cast<size_t>(L.tokens * cols));
  std::vector<double> z(static_cast<size_t>(r));
  for (int64_t t = 0; t < L.tokens; ++t) {
    for (auto& v : z) v = rng.normal();
    for (int64_t j = 0; j < cols; ++j) {
      double v = b * rng.normal();
      for (int64_t k = 0; k < r; ++k)
        v += a * z[static_cast<size_t>(k)] * load[static_cast<size_t>(k * cols + j)];
      xd[static_cast<size_t>(t * cols + j)] = v * L.col_scale[static_cast<size_t>(j)];
    }
  }
  L.x.assign(xd.begin(), xd.end());
  // H from the fp32-rounded inputs, so H is exactly the Hessian of L.x.
  for (size_t k = 0; k < xd.size(); ++k) xd[k] = static_cast<double>(L.x[k]);
  L.h.assign(static_cast<size_t>(cols * cols), 0.0);
  skim::kernels::gemm(true, false, cols, cols, L.tokens, 1.0 / static_cast<double>(L.tokens),
                      xd.data(), cols, xd.data(), cols, 0.0, L.h.data(), cols);
  return L;
}

// Fast path for large shapes (benchmarks): H = D (a^2 F F^T + b^2 I) D with the same channel
// model but no token matrix; costs cols^2 * factors flops.
inline SyntheticLayer make_synthetic_layer_fast(int64_t rows, int64_t cols, uint64_t seed,
                                                const SyntheticOptions& opt = {}) {
  SyntheticLayer L;
  L.rows = rows;
  L.cols = cols;
  L.w = synthetic_weights(rows, cols, seed, opt);
  L.col_scale = synthetic_channel_scales(cols, seed, opt);
  SyntheticRng rng(seed ^ 0xac71ull);
  const int64_t r = std::max<int64_t>(1, opt.factors);
  const double a = std::sqrt(opt.factor_strength / static_cast<double>(r));
  const double b2 = 1.0 - opt.factor_strength;
  std::vector<double> f(static_cast<size_t>(cols * r));  // row j = a * s_j * loadings of channel j
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t k = 0; k < r; ++k)
      f[static_cast<size_t>(j * r + k)] = a * L.col_scale[static_cast<size_t>(j)] * rng.normal();
  L.h.assign(static_cast<size_t>(cols * cols), 0.0);
  skim::kernels::gemm(false, true, cols, cols, r, 1.0, f.data(), r, f.data(), r, 0.0, L.h.data(),
                      cols);
  for (int64_t j = 0; j < cols; ++j) {
    const double s = L.col_scale[static_cast<size_t>(j)];
    L.h[static_cast<size_t>(j * cols + j)] += b2 * s * s;
  }
  return L;
}

}  // namespace skim::quant::testing
