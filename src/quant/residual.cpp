#include "src/quant/residual.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>

#include "kernels/cpu/qdec.h"
#include "src/core/error.h"
#include "src/core/half.h"

namespace skim::quant {
namespace {

int code_of(float r, float s) {
  if (s == 0.0f) return 8;
  return static_cast<int>(std::clamp(std::nearbyint(r / s), -8.0f, 7.0f)) + 8;
}

}  // namespace

ResidualLayer quantize_residual(const Tensor& r) {
  if (r.ndim() != 2) fail(ErrorKind::kBadInput, "residual: a matrix, got {}", r.shape_string());
  for (float v : r.values())
    if (!(std::fabs(v) <= 65504.0f))
      fail(ErrorKind::kBadInput, "residual: value {} is non-finite or beyond the fp16 range", v);
  ResidualLayer out;
  out.rows = r.dim(0);
  out.cols = r.dim(1);
  const int64_t m = out.rows, n = out.cols, stride = out.column_bytes();
  out.scale.assign(static_cast<size_t>(m), 0);
  out.codes.assign(static_cast<size_t>(n * stride), 0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < m; ++i) {
    const float* row = r.data() + i * n;
    float peak = 0.0f;
    for (int64_t j = 0; j < n; ++j) peak = std::max(peak, std::fabs(row[j]));
    uint16_t best = 0;
    double best_error = 0.0;
    for (size_t c = 0; c < std::size(kResidualClipFactors); ++c) {
      const uint16_t h = float_to_half(static_cast<float>(kResidualClipFactors[c]) * peak / 7.0f);
      const float s = half_to_float(h);
      double e = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const double d = row[j] - s * static_cast<float>(code_of(row[j], s) - 8);
        e += d * d;
      }
      if (c == 0 || e < best_error) {
        best = h;
        best_error = e;
      }
    }
    out.scale[static_cast<size_t>(i)] = best;
    const float s = half_to_float(best);
    for (int64_t j = 0; j < n; ++j) {
      const auto q = static_cast<uint8_t>(code_of(row[j], s));
      out.codes[static_cast<size_t>(j * stride + i / 2)] |= i % 2 == 0 ? q : q << 4;
    }
  }
  return out;
}

Tensor dequantize(const ResidualLayer& r) {
  Tensor out({r.rows, r.cols});
  const int64_t stride = r.column_bytes();
  for (int64_t j = 0; j < r.cols; ++j)
    for (int64_t i = 0; i < r.rows; ++i) {
      const uint8_t b = r.codes[static_cast<size_t>(j * stride + i / 2)];
      const int q = (i % 2 == 0 ? b & 15 : b >> 4) - 8;
      out.at(i, j) = half_to_float(r.scale[static_cast<size_t>(i)]) * static_cast<float>(q);
    }
  return out;
}

ResidualCorrector::ResidualCorrector(ResidualLayer residual) : residual_(std::move(residual)) {
  scale_.reserve(residual_.scale.size());
  for (uint16_t s : residual_.scale) scale_.push_back(half_to_float(s));
}

void ResidualCorrector::apply(const float* x, int64_t tokens, int64_t k, float* y) const {
  const ResidualLayer& r = residual_;
  if (k < 0 || k > r.cols) fail(ErrorKind::kBadInput, "qdec: {} channels of {}", k, r.cols);
  if (k == 0 || tokens <= 0) return;
  // Decode (one token) runs this once per linear and step: per-thread scratch, no allocation.
  const auto correct = [&](int64_t t) {
    thread_local std::vector<int32_t> channels;
    thread_local std::vector<float> acc;
    channels.resize(static_cast<size_t>(k));
    acc.resize(static_cast<size_t>(r.rows));
    const float* xt = x + t * r.cols;
    kernels::top_k_channels(xt, r.cols, k, channels.data());
    kernels::qdec_correct(r.codes.data(), scale_.data(), r.rows, xt, channels.data(), k, acc.data(),
                          y + t * r.rows);
  };
  if (tokens == 1) {
    correct(0);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tokens; ++t) correct(t);
}

}  // namespace skim::quant
