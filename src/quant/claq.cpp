#include "src/quant/claq.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <numeric>
#include <vector>

#include "kernels/cpu/blas.h"
#include "src/core/error.h"
#include "src/core/half.h"
#include "src/quant/gptq.h"

namespace skim::quant {
namespace {

// Columns by descending outlier order (ties: the lower column first).
std::vector<int64_t> outlier_ranking(const Tensor& w) {
  const int64_t m = w.dim(0), n = w.dim(1);
  double mean = 0.0;
  for (float v : w.values()) mean += std::fabs(v);
  mean /= static_cast<double>(m * n);
  std::vector<int64_t> order(static_cast<size_t>(n), 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      if (std::fabs(w.at(i, j)) >= kOutlierRatio * mean) ++order[static_cast<size_t>(j)];
  std::vector<int64_t> rank(static_cast<size_t>(n));
  std::iota(rank.begin(), rank.end(), 0);
  std::stable_sort(rank.begin(), rank.end(), [&](int64_t a, int64_t b) {
    return order[static_cast<size_t>(a)] > order[static_cast<size_t>(b)];
  });
  return rank;
}

// Widths from the columns' outlier ranking: the first floor(frac(bits) * n) get one bit more.
std::vector<uint8_t> column_bits(const std::vector<int64_t>& rank, double bits) {
  const auto n = static_cast<int64_t>(rank.size());
  const auto base = static_cast<int>(std::floor(bits + 1e-9));
  const int64_t wide =
      base >= 8 ? 0
                : static_cast<int64_t>(std::floor((bits - base) * static_cast<double>(n) + 1e-9));
  std::vector<uint8_t> out(static_cast<size_t>(n), static_cast<uint8_t>(base));
  for (int64_t k = 0; k < wide; ++k) out[static_cast<size_t>(rank[static_cast<size_t>(k)])]++;
  return out;
}

// Index of the fp16 centroid nearest to v (ties: the lower one).
uint8_t nearest(const std::vector<float>& centroids, float v) {
  size_t best = 0;
  for (size_t k = 1; k < centroids.size(); ++k)
    if (std::fabs(v - centroids[k]) < std::fabs(v - centroids[best])) best = k;
  return static_cast<uint8_t>(best);
}

// The layer's rows [first, first + count).
PackedColumnLutLayer row_block(const PackedColumnLutLayer& l, int64_t first, int64_t count) {
  PackedColumnLutLayer out;
  out.rows = count;
  out.cols = l.cols;
  out.bits = l.bits;
  out.codebook = l.codebook;
  const int64_t row_bytes = column_lut_offsets(l.bits).row_bytes;
  out.codes.assign(l.codes.begin() + first * row_bytes,
                   l.codes.begin() + (first + count) * row_bytes);
  if (!l.sparse.empty()) {
    const int64_t b = l.sparse.row_ptr[static_cast<size_t>(first)];
    const int64_t e = l.sparse.row_ptr[static_cast<size_t>(first + count)];
    for (int64_t i = first; i <= first + count; ++i)
      out.sparse.row_ptr.push_back(l.sparse.row_ptr[static_cast<size_t>(i)] - b);
    out.sparse.cols.assign(l.sparse.cols.begin() + b, l.sparse.cols.begin() + e);
    out.sparse.values.assign(l.sparse.values.begin() + b, l.sparse.values.begin() + e);
  }
  return out;
}

}  // namespace

std::vector<uint8_t> claq_column_bits(const Tensor& w, double bits) {
  return column_bits(outlier_ranking(w), bits);
}

PackedColumnLutLayer claq_quantize(const Tensor& w, const Tensor& h, const ClaqOptions& o) {
  if (w.ndim() != 2 || w.numel() == 0 || h.ndim() != 2 || h.dim(0) != w.dim(1) ||
      h.dim(1) != w.dim(1))
    fail(ErrorKind::kBadInput, "claq: weight {} with Hessian {}", w.shape_string(),
         h.shape_string());
  if (!(o.bits >= 1.0 && o.bits <= 8.0) || !(o.outliers >= 0.0 && o.outliers <= 0.25) ||
      o.block_size <= 0)
    fail(ErrorKind::kBadInput, "claq: bits {} (need 1..8), outliers {} (need 0..0.25)", o.bits,
         o.outliers);
  for (float v : w.values())
    if (!(std::fabs(v) <= 65504.0f))
      fail(ErrorKind::kBadInput, "claq: weight {} is non-finite or beyond the fp16 range", v);
  const int64_t m = w.dim(0), n = w.dim(1);
  const std::vector<double> hd(h.values().begin(), h.values().end());
  const GptqFactor f = gptq_factor(hd, n, o.damp, false);

  PackedColumnLutLayer out;
  out.rows = m;
  out.cols = n;
  const std::vector<int64_t> rank = outlier_ranking(w);
  out.bits = column_bits(rank, o.bits);
  std::vector<int64_t> reserve(static_cast<size_t>(n));
  const auto top = static_cast<size_t>(std::llround(0.1 * static_cast<double>(n)));
  for (size_t k = 0; k < rank.size(); ++k)
    reserve[static_cast<size_t>(rank[k])] = std::min<int64_t>(
        m, std::llround((k < top ? 2.8 : 0.8) * o.outliers * static_cast<double>(m)));

  std::vector<float> wp(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      wp[static_cast<size_t>(i * n + j)] = f.dead[static_cast<size_t>(j)] ? 0.0f : w.at(i, j);
  std::vector<uint8_t> codes(static_cast<size_t>(m * n));
  std::vector<char> reserved(static_cast<size_t>(m * n), 0);
  std::vector<float> kept(static_cast<size_t>(m * n), 0.0f);  // a reserved weight's value
  std::vector<std::vector<float>> centroids(static_cast<size_t>(n));
  std::vector<float> col(static_cast<size_t>(m)), err;
  std::vector<int64_t> by_value(static_cast<size_t>(m));
  for (int64_t i1 = 0; i1 < n; i1 += o.block_size) {
    const int64_t i2 = std::min(n, i1 + o.block_size), bs = i2 - i1;
    err.assign(static_cast<size_t>(m * bs), 0.0f);
    for (int64_t j = i1; j < i2; ++j) {
      for (int64_t i = 0; i < m; ++i)
        col[static_cast<size_t>(i)] = wp[static_cast<size_t>(i * n + j)];
      // Both tails of the column's current values are reserved (ties: the lower row first).
      const int64_t r = reserve[static_cast<size_t>(j)];
      std::iota(by_value.begin(), by_value.end(), 0);
      std::stable_sort(by_value.begin(), by_value.end(), [&](int64_t a, int64_t b) {
        return col[static_cast<size_t>(a)] < col[static_cast<size_t>(b)];
      });
      for (int64_t k = 0; k < r; ++k) {
        const int64_t i = k % 2 == 0 ? by_value[static_cast<size_t>(m - 1 - k / 2)]
                                     : by_value[static_cast<size_t>(k / 2)];
        reserved[static_cast<size_t>(i * n + j)] = 1;
      }
      std::vector<float> rest;
      for (int64_t i = 0; i < m; ++i)
        if (!reserved[static_cast<size_t>(i * n + j)]) rest.push_back(col[static_cast<size_t>(i)]);
      const int k_count = 1 << out.bits[static_cast<size_t>(j)];
      std::vector<float>& c = centroids[static_cast<size_t>(j)];
      c.assign(static_cast<size_t>(k_count), 0.0f);
      if (!rest.empty()) {
        const std::vector<float> ones(rest.size(), 1.0f);
        const KMeans1dResult km = kmeans1d(rest, ones, k_count, o.solver);
        for (int k = 0; k < k_count; ++k) {
          const float v = half_to_float(float_to_half(km.centroids[static_cast<size_t>(k)]));
          if (!std::isfinite(v))
            fail(ErrorKind::kNumeric, "claq: column {} centroid {} beyond the fp16 range", j,
                 km.centroids[static_cast<size_t>(k)]);
          c[static_cast<size_t>(k)] = v;
        }
      }
      const float d = f.u[static_cast<size_t>(j * n + j)];
      const float* uj = f.u.data() + j * n;
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < m; ++i) {
        const auto at = static_cast<size_t>(i * n + j);
        const float v = wp[at];
        const uint8_t code = nearest(c, v);
        codes[at] = code;
        float q = c[code];
        if (reserved[at]) {  // the LUT value plus its fp16 correction, as the sparse part stores
          kept[at] = v;
          q += half_to_float(float_to_half(v - q));
        }
        const float e = (v - q) / d;
        err[static_cast<size_t>(i * bs + (j - i1))] = e;
        float* row = wp.data() + i * n;
        for (int64_t k = j + 1; k < i2; ++k) row[k] -= e * uj[k];
      }
    }
    if (i2 < n)
      kernels::gemm(false, false, m, n - i2, bs, -1.0f, err.data(), bs, f.u.data() + i1 * n + i2, n,
                    1.0f, wp.data() + i2, n);
  }

  for (const auto& c : centroids)
    for (float v : c) out.codebook.push_back(float_to_half(v));
  out.codes = pack_column_codes(codes, m, out.bits);
  if (o.outliers > 0.0) {
    out.sparse.row_ptr.assign(1, 0);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        const auto at = static_cast<size_t>(i * n + j);
        if (!reserved[at]) continue;
        const float lut = centroids[static_cast<size_t>(j)][codes[at]];
        out.sparse.cols.push_back(static_cast<int32_t>(j));
        out.sparse.values.push_back(float_to_half(kept[at] - lut));
      }
      out.sparse.row_ptr.push_back(static_cast<int64_t>(out.sparse.cols.size()));
    }
  }
  return out;
}

PackedColumnLutLayer claq_quantize(const Tensor& w, const Tensor& h, const ClaqOptions& o,
                                   RowGroup& group) {
  const RowBlock& b = group.block();
  const int64_t n = w.dim(1);
  std::vector<double> mine(w.values().begin(), w.values().end());
  const std::vector<double> all = group.all_gather(mine);
  if (static_cast<int64_t>(all.size()) != b.total * n)
    fail(ErrorKind::kInternal, "claq: gathered {} weights for [{}, {}]", all.size(), b.total, n);
  const Tensor full({b.total, n}, std::vector<float>(all.begin(), all.end()));
  const PackedColumnLutLayer l = claq_quantize(full, h, o);
  return row_block(l, b.first, b.count);
}

}  // namespace skim::quant
