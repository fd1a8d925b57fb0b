#include "src/quant/packed_layer.h"

#include <algorithm>
#include <cstring>

#include "src/core/error.h"
#include "src/core/half.h"

namespace skim::quant {

void pack_row(const uint8_t* values, int64_t cols, int bits, uint8_t* out) {
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t acc = 0;
  int filled = 0;
  for (int64_t j = 0; j < cols; ++j) {
    acc |= (values[j] & mask) << filled;
    filled += bits;
    while (filled >= 8) {
      *out++ = static_cast<uint8_t>(acc);
      acc >>= 8;
      filled -= 8;
    }
  }
  if (filled > 0) *out = static_cast<uint8_t>(acc);
}

void unpack_row(const uint8_t* packed, int64_t cols, int bits, uint8_t* out) {
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t acc = 0;
  int filled = 0;
  for (int64_t j = 0; j < cols; ++j) {
    if (filled < bits) {
      acc |= static_cast<uint64_t>(*packed++) << filled;
      filled += 8;
    }
    out[j] = static_cast<uint8_t>(acc & mask);
    acc >>= bits;
    filled -= bits;
  }
}

PackedLutLayer pack(const LutLayer& layer) {
  validate(layer, "LUT layer");
  PackedLutLayer p;
  p.rows = layer.rows;
  p.cols = layer.cols;
  p.bits = layer.bits;
  p.codebook = layer.codebook;
  p.alpha = layer.alpha;
  const PackedLutOffsets o = packed_lut_offsets(p.cols, p.bits);
  p.labels.assign(static_cast<size_t>(o.label.back()), 0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.rows; ++i)
    pack_row(layer.labels.data() + i * p.cols, p.cols, p.bits[static_cast<size_t>(i)],
             p.labels.data() + o.label[static_cast<size_t>(i)]);
  return p;
}

LutLayer unpack(const PackedLutLayer& p) {
  const PackedLutOffsets o = packed_lut_offsets(p.cols, p.bits);
  SKIM_ASSERT(p.bits.size() == static_cast<size_t>(p.rows) &&
              p.labels.size() == static_cast<size_t>(o.label.back()) &&
              p.codebook.size() == static_cast<size_t>(o.codebook.back()));
  LutLayer l;
  l.rows = p.rows;
  l.cols = p.cols;
  l.bits = p.bits;
  l.codebook_offset = o.codebook;
  l.codebook = p.codebook;
  l.alpha = p.alpha;
  l.labels.resize(static_cast<size_t>(p.rows * p.cols));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.rows; ++i)
    unpack_row(p.labels.data() + o.label[static_cast<size_t>(i)], p.cols,
               p.bits[static_cast<size_t>(i)], l.labels.data() + i * p.cols);
  return l;
}

PackedUniformLayer pack(const UniformLayer& layer) {
  validate(layer, "uniform layer");
  PackedUniformLayer p;
  p.rows = layer.rows;
  p.cols = layer.cols;
  p.bits = layer.bits;
  p.group_size = layer.group_size;
  p.scale = layer.scale;
  p.zero = layer.zero;
  p.perm = layer.perm;
  const int64_t row_bytes = packed_row_bytes(p.cols, p.bits);
  p.codes.assign(static_cast<size_t>(p.rows * row_bytes), 0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.rows; ++i)
    pack_row(layer.codes.data() + i * p.cols, p.cols, p.bits, p.codes.data() + i * row_bytes);
  return p;
}

UniformLayer unpack(const PackedUniformLayer& p) {
  const int64_t row_bytes = packed_row_bytes(p.cols, p.bits);
  SKIM_ASSERT(p.codes.size() == static_cast<size_t>(p.rows * row_bytes));
  UniformLayer l;
  l.rows = p.rows;
  l.cols = p.cols;
  l.bits = p.bits;
  l.group_size = p.group_size;
  l.scale = p.scale;
  l.zero = p.zero;
  l.perm = p.perm;
  l.codes.resize(static_cast<size_t>(p.rows * p.cols));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.rows; ++i)
    unpack_row(p.codes.data() + i * row_bytes, p.cols, p.bits, l.codes.data() + i * p.cols);
  return l;
}

namespace {

// x / alpha, computed once per product.
std::vector<float> scaled_input(const PackedLutLayer& layer, const float* x, int64_t batch) {
  std::vector<float> xs(x, x + batch * layer.cols);
  if (layer.alpha.empty()) return xs;
  std::vector<float> alpha(layer.alpha.size());
  for (size_t j = 0; j < alpha.size(); ++j) alpha[j] = half_to_float(layer.alpha[j]);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < layer.cols; ++j)
      xs[static_cast<size_t>(b * layer.cols + j)] /= alpha[static_cast<size_t>(j)];
  return xs;
}

void check_lut_layout(const PackedLutLayer& layer, const PackedLutOffsets& o) {
  SKIM_ASSERT(layer.bits.size() == static_cast<size_t>(layer.rows));
  SKIM_ASSERT(layer.labels.size() == static_cast<size_t>(o.label.back()));
  SKIM_ASSERT(layer.codebook.size() == static_cast<size_t>(o.codebook.back()));
  SKIM_ASSERT(layer.alpha.empty() || layer.alpha.size() == static_cast<size_t>(layer.cols));
}

}  // namespace

void gemv(const PackedLutLayer& layer, const float* x, float* y) {
  const PackedLutOffsets o = packed_lut_offsets(layer.cols, layer.bits);
  check_lut_layout(layer, o);
  const std::vector<float> xs = scaled_input(layer, x, 1);
#pragma omp parallel
  {
    std::vector<uint8_t> labels(static_cast<size_t>(layer.cols));
    float lut[256];
#pragma omp for schedule(static)
    for (int64_t i = 0; i < layer.rows; ++i) {
      const auto r = static_cast<size_t>(i);
      const int bits = layer.bits[r];
      for (int k = 0; k < (1 << bits); ++k)
        lut[k] = half_to_float(layer.codebook[static_cast<size_t>(o.codebook[r] + k)]);
      unpack_row(layer.labels.data() + o.label[r], layer.cols, bits, labels.data());
      float acc = 0.0f;
      for (int64_t j = 0; j < layer.cols; ++j)
        acc += lut[labels[static_cast<size_t>(j)]] * xs[static_cast<size_t>(j)];
      y[i] = acc;
    }
  }
}

void gemm(const PackedLutLayer& layer, const float* x, int64_t batch, float* y) {
  const PackedLutOffsets o = packed_lut_offsets(layer.cols, layer.bits);
  check_lut_layout(layer, o);
  const int64_t n = layer.cols;
  // Inputs transposed to [cols, batch]: the partial sums add whole contiguous lines.
  const std::vector<float> xs = scaled_input(layer, x, batch);
  std::vector<float> xt(xs.size());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < n; ++j)
      xt[static_cast<size_t>(j * batch + b)] = xs[static_cast<size_t>(b * n + j)];
  constexpr int64_t kChunk = 256;  // batch columns per pass: 16 LUT entries x 256 floats = 16 KiB
#pragma omp parallel
  {
    std::vector<uint8_t> labels(static_cast<size_t>(n));
    std::vector<float> sums;
    float lut[256];
#pragma omp for schedule(static)
    for (int64_t i = 0; i < layer.rows; ++i) {
      const auto r = static_cast<size_t>(i);
      const int bits = layer.bits[r];
      const int k_count = 1 << bits;
      for (int k = 0; k < k_count; ++k)
        lut[k] = half_to_float(layer.codebook[static_cast<size_t>(o.codebook[r] + k)]);
      unpack_row(layer.labels.data() + o.label[r], n, bits, labels.data());
      for (int64_t b0 = 0; b0 < batch; b0 += kChunk) {
        const int64_t width = std::min(kChunk, batch - b0);
        sums.assign(static_cast<size_t>(k_count * width), 0.0f);
        for (int64_t j = 0; j < n; ++j) {
          float* s = sums.data() + labels[static_cast<size_t>(j)] * width;
          const float* xj = xt.data() + j * batch + b0;
          for (int64_t b = 0; b < width; ++b) s[b] += xj[b];
        }
        for (int64_t b = 0; b < width; ++b) {
          float acc = 0.0f;
          for (int k = 0; k < k_count; ++k)
            acc += lut[k] * sums[static_cast<size_t>(k * width + b)];
          y[(b0 + b) * layer.rows + i] = acc;
        }
      }
    }
  }
}

void gemv(const PackedUniformLayer& layer, const float* x, float* y) {
  gemm(layer, x, 1, y);
}

void gemm(const PackedUniformLayer& layer, const float* x, int64_t batch, float* y) {
  const int64_t n = layer.cols;
  const int64_t row_bytes = packed_row_bytes(n, layer.bits);
  SKIM_ASSERT(layer.codes.size() == static_cast<size_t>(layer.rows * row_bytes));
  SKIM_ASSERT(layer.scale.size() == static_cast<size_t>(layer.rows * layer.groups()));
  SKIM_ASSERT(layer.zero.size() == layer.scale.size());
  UniformLayer shape;  // column_groups needs only the grouping fields
  shape.cols = n;
  shape.group_size = layer.group_size;
  shape.perm = layer.perm;
  const std::vector<int32_t> group = column_groups(shape);
#pragma omp parallel
  {
    std::vector<uint8_t> codes(static_cast<size_t>(n));
    std::vector<float> w(static_cast<size_t>(n));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < layer.rows; ++i) {
      unpack_row(layer.codes.data() + i * row_bytes, n, layer.bits, codes.data());
      const int64_t g0 = i * layer.groups();
      for (int64_t j = 0; j < n; ++j) {
        const auto k = static_cast<size_t>(g0 + group[static_cast<size_t>(j)]);
        w[static_cast<size_t>(j)] =
            half_to_float(layer.scale[k]) *
            (static_cast<float>(codes[static_cast<size_t>(j)]) - half_to_float(layer.zero[k]));
      }
      for (int64_t b = 0; b < batch; ++b) {
        const float* xb = x + b * n;
        float acc = 0.0f;
        for (int64_t j = 0; j < n; ++j) acc += w[static_cast<size_t>(j)] * xb[j];
        y[b * layer.rows + i] = acc;
      }
    }
  }
}

}  // namespace skim::quant
