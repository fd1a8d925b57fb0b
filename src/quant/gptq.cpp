#include "src/quant/gptq.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <numeric>
#include <vector>

#include "kernels/cpu/blas.h"
#include "src/core/error.h"
#include "src/core/half.h"
#include "src/quant/packed_layer.h"

namespace skim::quant {
namespace {

// U (upper, row-major, zeros below the diagonal) with U^T U = (H + damp * mean(diag H) * I)^-1.
std::vector<float> inverse_cholesky_upper(std::vector<double> h, int64_t n, double damp) {
  double mean_diag = 0.0;
  for (int64_t j = 0; j < n; ++j) mean_diag += h[static_cast<size_t>(j * n + j)];
  mean_diag /= static_cast<double>(n);
  for (int64_t j = 0; j < n; ++j) h[static_cast<size_t>(j * n + j)] += damp * mean_diag;
  const auto ni = static_cast<lapack_int>(n);
  lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', ni, h.data(), ni);
  if (info != 0)
    fail(ErrorKind::kNumeric,
         "gptq: damped Hessian [{0}, {0}] is not positive definite (potrf {1})", n, info);
  info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', ni, h.data(), ni);
  if (info != 0) fail(ErrorKind::kNumeric, "gptq: Hessian inverse failed (potri {})", info);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j)
      h[static_cast<size_t>(i * n + j)] = h[static_cast<size_t>(j * n + i)];
  info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', ni, h.data(), ni);
  if (info != 0) fail(ErrorKind::kNumeric, "gptq: H^-1 is not positive definite (potrf {})", info);
  std::vector<float> u(static_cast<size_t>(n * n), 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j)
      u[static_cast<size_t>(i * n + j)] = static_cast<float>(h[static_cast<size_t>(i * n + j)]);
  return u;
}

// Grid of one (row, group): the reference's range, or with the clipping search the scaled range
// whose grid rounds the group's weights w[0, count) with the least error sum ((w - q) / d)^2.
UniformParams group_params(const float* w, const float* d, int64_t count, int bits, bool clip) {
  const auto [lo, hi] = std::minmax_element(w, w + count);
  if (!clip) return uniform_params(*lo, *hi, bits);
  UniformParams best{};
  double best_error = 0.0;
  for (size_t c = 0; c < std::size(kClipFactors); ++c) {
    const auto f = static_cast<float>(kClipFactors[c]);
    const UniformParams p = uniform_params(f * *lo, f * *hi, bits);
    double e = 0.0;
    for (int64_t j = 0; j < count; ++j) {
      const double r = (w[j] - uniform_value(uniform_code(w[j], p, bits), p)) / d[j];
      e += r * r;
    }
    if (c == 0 || e < best_error) {
      best = p;
      best_error = e;
    }
  }
  return best;
}

}  // namespace

std::vector<int32_t> act_order_permutation(std::span<const double> h, int64_t n) {
  std::vector<int32_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  // A dead column (H_jj == 0) sorts as if H_jj were 1, the value gptq_factor gives it.
  const auto diag = [&](int32_t j) {
    const double d = h[static_cast<size_t>(j) * static_cast<size_t>(n + 1)];
    return d == 0.0 ? 1.0 : d;
  };
  std::stable_sort(perm.begin(), perm.end(),
                   [&](int32_t a, int32_t b) { return diag(a) > diag(b); });
  return perm;
}

GptqFactor gptq_factor(std::span<const double> h, int64_t n, double damp, bool act_order) {
  if (n <= 0 || h.size() != static_cast<size_t>(n * n))
    fail(ErrorKind::kBadInput, "gptq: Hessian has {} entries, expected {} x {}", h.size(), n, n);
  if (!(damp >= 0.0)) fail(ErrorKind::kBadInput, "gptq: damp {}", damp);
  for (double v : h)
    if (!std::isfinite(v)) fail(ErrorKind::kBadInput, "gptq: non-finite Hessian entry");
  GptqFactor f;
  f.n = n;
  f.act_order = act_order;
  std::vector<double> hd(h.begin(), h.end());
  f.dead.assign(static_cast<size_t>(n), 0);
  for (int64_t j = 0; j < n; ++j) {
    if (hd[static_cast<size_t>(j * n + j)] == 0.0) {
      hd[static_cast<size_t>(j * n + j)] = 1.0;
      f.dead[static_cast<size_t>(j)] = 1;
    }
  }
  f.perm.resize(static_cast<size_t>(n));
  std::iota(f.perm.begin(), f.perm.end(), 0);
  if (act_order) {
    f.perm = act_order_permutation(hd, n);
    std::vector<double> hp(hd.size());
    for (int64_t a = 0; a < n; ++a)
      for (int64_t b = 0; b < n; ++b)
        hp[static_cast<size_t>(a * n + b)] =
            hd[static_cast<size_t>(f.perm[static_cast<size_t>(a)]) * n +
               f.perm[static_cast<size_t>(b)]];
    hd.swap(hp);
  }
  f.u = inverse_cholesky_upper(std::move(hd), n, damp);
  return f;
}

UniformLayer gptq_quantize(const Tensor& w, std::span<const double> h, const GptqOptions& options) {
  if (w.ndim() != 2 || w.numel() == 0)
    fail(ErrorKind::kBadInput, "gptq: weight must be a non-empty matrix, got {}", w.shape_string());
  return gptq_quantize(w, gptq_factor(h, w.dim(1), options.damp, options.act_order), options);
}

UniformLayer gptq_quantize(const Tensor& w, const GptqFactor& factor, const GptqOptions& options) {
  if (w.ndim() != 2 || w.numel() == 0)
    fail(ErrorKind::kBadInput, "gptq: weight must be a non-empty matrix, got {}", w.shape_string());
  const int64_t m = w.dim(0);
  const int64_t n = w.dim(1);
  if (factor.n != n)
    fail(ErrorKind::kBadInput, "gptq: Hessian factor of {} columns for a weight {}", factor.n,
         w.shape_string());
  if (options.bits < 2 || options.bits > 8)
    fail(ErrorKind::kBadInput, "gptq: bits {} outside 2..8", options.bits);
  if (options.group_size < 0 || options.block_size <= 0)
    fail(ErrorKind::kBadInput, "gptq: bad options (group size {}, block size {})",
         options.group_size, options.block_size);
  for (float v : w.values())
    if (!(std::fabs(v) <= 65504.0f))
      fail(ErrorKind::kBadInput, "gptq: weight {} is non-finite or beyond the fp16 range", v);

  UniformLayer out;
  out.rows = m;
  out.cols = n;
  out.bits = options.bits;
  out.group_size = options.group_size >= n && options.group_bits.empty() ? 0 : options.group_size;
  const int64_t gs = out.group_size;
  const int64_t groups = out.groups();
  out.group_bits = options.group_bits;
  if (!uniform_group_bits_valid(groups, gs, factor.act_order, out.group_bits))
    fail(ErrorKind::kBadInput,
         "gptq: {} group widths for {} groups of {} columns{} (need one 1..8 per group, a group "
         "size that is a multiple of 8, no act-order)",
         out.group_bits.size(), groups, gs, factor.act_order ? " with act-order" : "");
  out.scale.resize(static_cast<size_t>(m * groups));
  out.zero.resize(out.scale.size());
  out.codes.resize(static_cast<size_t>(m * n));
  const std::vector<int32_t>& perm = factor.perm;
  const std::vector<float>& u = factor.u;
  if (factor.act_order) out.perm = perm;
  std::vector<float> diag(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) diag[static_cast<size_t>(j)] = u[static_cast<size_t>(j * n + j)];

  // Per-row parameters come from the original weights, before dead columns are zeroed.
  std::vector<UniformParams> row_params(static_cast<size_t>(gs == 0 ? m : 0));
  for (size_t i = 0; i < row_params.size(); ++i) {
    const float* row = w.data() + i * static_cast<size_t>(n);
    const auto [lo, hi] = std::minmax_element(row, row + n);
    row_params[i] = uniform_params(*lo, *hi, out.bits);
    out.scale[i] = row_params[i].scale_h;
    out.zero[i] = row_params[i].zero_h;
  }
  // Working weights in processing order.
  std::vector<float> wp(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < n; ++k) {
      const int32_t j = perm[static_cast<size_t>(k)];
      wp[static_cast<size_t>(i * n + k)] = factor.dead[static_cast<size_t>(j)] ? 0.0f : w.at(i, j);
    }

  // Blocks never contain a group start except at their first column unless the whole group
  // fits inside the block, so group parameters always see fully updated weights.
  int64_t block = options.block_size;
  if (gs > 0 && gs <= block) block = (block / gs) * gs;
  std::vector<float> err;
  std::exception_ptr failure;  // an exception must not leave the parallel region
  for (int64_t i1 = 0; i1 < n;) {
    int64_t i2 = std::min(n, i1 + block);
    if (gs > block) i2 = std::min(i2, (i1 / gs + 1) * gs);
    const int64_t bs = i2 - i1;
    err.assign(static_cast<size_t>(m * bs), 0.0f);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < m; ++r) {
      try {
        float* row = wp.data() + r * n;
        float* e = err.data() + r * bs;
        UniformParams p = gs == 0 ? row_params[static_cast<size_t>(r)] : UniformParams{};
        int width = gs == 0 ? out.bits : out.group_width(i1 / gs);
        if (gs > 0 && i1 % gs != 0) {  // a group continuing from the previous block
          const size_t k = static_cast<size_t>(r * groups + i1 / gs);
          p.scale_h = out.scale[k];
          p.zero_h = out.zero[k];
          p.scale = half_to_float(p.scale_h);
          p.zero = half_to_float(p.zero_h);
        }
        for (int64_t j = i1; j < i2; ++j) {
          if (gs > 0 && j % gs == 0) {
            const int64_t count = std::min(n, j + gs) - j;
            width = out.group_width(j / gs);
            p = group_params(row + j, diag.data() + j, count, width, options.clip_search);
            const size_t k = static_cast<size_t>(r * groups + j / gs);
            out.scale[k] = p.scale_h;
            out.zero[k] = p.zero_h;
          }
          const uint8_t q = uniform_code(row[j], p, width);
          out.codes[static_cast<size_t>(r * n + perm[static_cast<size_t>(j)])] = q;
          const float ej = (row[j] - uniform_value(q, p)) / diag[static_cast<size_t>(j)];
          e[j - i1] = ej;
          const float* uj = u.data() + j * n;
          for (int64_t k = j + 1; k < i2; ++k) row[k] -= ej * uj[k];
        }
      } catch (...) {
#pragma omp critical(skim_gptq_failure)
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
    if (i2 < n)
      kernels::gemm(false, false, m, n - i2, bs, -1.0f, err.data(), bs, u.data() + i1 * n + i2, n,
                    1.0f, wp.data() + i2, n);
    i1 = i2;
  }
  return out;
}

UniformLayer gptq_quantize(const Tensor& w, const Tensor& h, const GptqOptions& options) {
  if (h.ndim() != 2)
    fail(ErrorKind::kBadInput, "gptq: Hessian must be a matrix, got {}", h.shape_string());
  std::vector<double> hd(h.values().begin(), h.values().end());
  return gptq_quantize(w, std::span<const double>(hd), options);
}

}  // namespace skim::quant
