#include "src/quant/uniform_layer.h"

#include <algorithm>
#include <cmath>

#include "src/core/error.h"
#include "src/core/half.h"
#include "src/quant/packed_layer.h"

namespace skim::quant {

std::vector<int32_t> column_groups(const UniformLayer& layer) {
  std::vector<int32_t> group(static_cast<size_t>(layer.cols), 0);
  if (layer.group_size <= 0) return group;
  for (int64_t k = 0; k < layer.cols; ++k) {
    const int64_t j = layer.perm.empty() ? k : layer.perm[static_cast<size_t>(k)];
    group[static_cast<size_t>(j)] = static_cast<int32_t>(k / layer.group_size);
  }
  return group;
}

void validate(const UniformLayer& layer, const char* what) {
  if (layer.rows <= 0 || layer.cols <= 0)
    fail(ErrorKind::kBadInput, "{}: empty uniform layer [{}, {}]", what, layer.rows, layer.cols);
  if (layer.bits < 1 || layer.bits > 8)
    fail(ErrorKind::kBadInput, "{}: bits {} outside 1..8", what, layer.bits);
  if (layer.group_size < 0)
    fail(ErrorKind::kBadInput, "{}: negative group size {}", what, layer.group_size);
  const auto params = static_cast<size_t>(layer.rows * layer.groups());
  if (layer.scale.size() != params || layer.zero.size() != params)
    fail(ErrorKind::kBadInput, "{}: {} scales and {} zeros, expected {}", what, layer.scale.size(),
         layer.zero.size(), params);
  if (layer.codes.size() != static_cast<size_t>(layer.rows * layer.cols))
    fail(ErrorKind::kBadInput, "{}: {} codes, expected {}", what, layer.codes.size(),
         layer.rows * layer.cols);
  if (!uniform_group_bits_valid(layer.groups(), layer.group_size, !layer.perm.empty(),
                                layer.group_bits))
    fail(ErrorKind::kBadInput,
         "{}: {} group widths for {} groups of {} columns (need widths 1..8, groups of a multiple "
         "of 8 columns and no permutation)",
         what, layer.group_bits.size(), layer.groups(), layer.group_size);
  const std::vector<int32_t> group = column_groups(layer);
  for (int64_t i = 0; i < layer.rows; ++i)
    for (int64_t j = 0; j < layer.cols; ++j) {
      const int b = layer.group_width(group[static_cast<size_t>(j)]);
      const uint8_t q = layer.codes[static_cast<size_t>(i * layer.cols + j)];
      if (q >= (1 << b))
        fail(ErrorKind::kBadInput, "{}: code {} at ({}, {}) exceeds {} bits", what, q, i, j, b);
    }
  for (size_t k = 0; k < params; ++k) {
    const int maxq = (1 << layer.group_width(static_cast<int64_t>(k) % layer.groups())) - 1;
    const float s = half_to_float(layer.scale[k]);
    const float z = half_to_float(layer.zero[k]);
    if (!(s > 0.0f) || !std::isfinite(s))
      fail(ErrorKind::kBadInput, "{}: scale {} at {} is not positive and finite", what, s, k);
    if (!(z >= 0.0f && z <= static_cast<float>(maxq) && z == std::floor(z)))
      fail(ErrorKind::kBadInput, "{}: zero point {} at {} is not an integer in [0, {}]", what, z, k,
           maxq);
  }
  if (!layer.perm.empty()) {
    if (layer.perm.size() != static_cast<size_t>(layer.cols))
      fail(ErrorKind::kBadInput, "{}: permutation of {} entries for {} columns", what,
           layer.perm.size(), layer.cols);
    std::vector<char> seen(static_cast<size_t>(layer.cols), 0);
    for (int32_t j : layer.perm) {
      if (j < 0 || j >= layer.cols || seen[static_cast<size_t>(j)])
        fail(ErrorKind::kBadInput, "{}: permutation is not a permutation of 0..{}", what,
             layer.cols - 1);
      seen[static_cast<size_t>(j)] = 1;
    }
  }
}

Tensor dequantize(const UniformLayer& layer) {
  validate(layer, "uniform layer");
  Tensor w({layer.rows, layer.cols});
  const std::vector<int32_t> group = column_groups(layer);
  const int64_t groups = layer.groups();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < layer.rows; ++i) {
    float* out = w.data() + i * layer.cols;
    const uint8_t* q = layer.codes.data() + i * layer.cols;
    for (int64_t j = 0; j < layer.cols; ++j) {
      const auto k = static_cast<size_t>(i * groups + group[static_cast<size_t>(j)]);
      out[j] =
          half_to_float(layer.scale[k]) * (static_cast<float>(q[j]) - half_to_float(layer.zero[k]));
    }
  }
  return w;
}

int64_t stored_bits(const UniformLayer& layer) {
  int64_t code_bits = layer.rows * layer.cols * layer.bits;
  if (!layer.group_bits.empty()) {
    code_bits = 0;
    for (int64_t g = 0; g < layer.groups(); ++g)
      code_bits += layer.rows *
                   (std::min(layer.cols, (g + 1) * layer.group_size) - g * layer.group_size) *
                   layer.group_width(g);
  }
  return code_bits + 32 * layer.rows * layer.groups() + (layer.perm.empty() ? 0 : 32 * layer.cols) +
         8 * static_cast<int64_t>(layer.group_bits.size());
}

UniformParams uniform_params(float min_value, float max_value, int bits) {
  SKIM_ASSERT(bits >= 1 && bits <= 8);
  float lo = std::min(min_value, 0.0f);
  float hi = std::max(max_value, 0.0f);
  if (lo == 0.0f && hi == 0.0f) {
    lo = -1.0f;
    hi = 1.0f;
  }
  if (!std::isfinite(lo) || !std::isfinite(hi))
    fail(ErrorKind::kNumeric, "uniform quantizer: non-finite range [{}, {}]", lo, hi);
  const float maxq = static_cast<float>((1 << bits) - 1);
  const float s = (hi - lo) / maxq;
  UniformParams p;
  p.scale_h = float_to_half(s);
  // Round up: a smaller fp16 scale would let the grid fall short of the range.
  if (half_to_float(p.scale_h) < s) ++p.scale_h;
  p.scale = half_to_float(p.scale_h);
  if (!std::isfinite(p.scale))
    fail(ErrorKind::kNumeric, "uniform quantizer: scale {} overflows fp16", s);
  p.zero = std::clamp(std::nearbyint(-lo / p.scale), 0.0f, maxq);
  p.zero_h = float_to_half(p.zero);
  return p;
}

}  // namespace skim::quant
