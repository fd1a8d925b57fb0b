#include "src/quant/lut_layer.h"

#include <cmath>

#include "src/core/error.h"
#include "src/core/half.h"

namespace skim::quant {

void validate(const LutLayer& layer, const char* what) {
  if (layer.rows <= 0 || layer.cols <= 0)
    fail(ErrorKind::kBadInput, "{}: empty LUT layer [{}, {}]", what, layer.rows, layer.cols);
  const auto rows = static_cast<size_t>(layer.rows);
  if (layer.bits.size() != rows || layer.codebook_offset.size() != rows + 1)
    fail(ErrorKind::kBadInput, "{}: {} bit widths and {} codebook offsets for {} rows", what,
         layer.bits.size(), layer.codebook_offset.size(), layer.rows);
  if (layer.labels.size() != rows * static_cast<size_t>(layer.cols))
    fail(ErrorKind::kBadInput, "{}: {} labels, expected {}", what, layer.labels.size(),
         layer.rows * layer.cols);
  if (layer.codebook_offset[0] != 0 ||
      layer.codebook_offset[rows] != static_cast<int64_t>(layer.codebook.size()))
    fail(ErrorKind::kBadInput, "{}: codebook offsets do not span the {} codebook entries", what,
         layer.codebook.size());
  for (size_t i = 0; i < rows; ++i) {
    const int b = layer.bits[i];
    if (b < 1 || b > 8) fail(ErrorKind::kBadInput, "{}: row {} has {} bits", what, i, b);
    const int64_t k = layer.codebook_offset[i + 1] - layer.codebook_offset[i];
    if (k != (int64_t{1} << b))
      fail(ErrorKind::kBadInput, "{}: row {} has {} LUT entries for {} bits (need {})", what, i, k,
           b, 1 << b);
    for (int64_t j = 0; j < layer.cols; ++j)
      if (layer.labels[i * static_cast<size_t>(layer.cols) + static_cast<size_t>(j)] >= k)
        fail(ErrorKind::kBadInput, "{}: label at row {} column {} exceeds {} bits", what, i, j, b);
  }
  for (uint16_t c : layer.codebook)
    if (!std::isfinite(half_to_float(c)))
      fail(ErrorKind::kBadInput, "{}: non-finite codebook entry", what);
  if (!layer.alpha.empty()) {
    if (layer.alpha.size() != static_cast<size_t>(layer.cols))
      fail(ErrorKind::kBadInput, "{}: {} alpha values for {} columns", what, layer.alpha.size(),
           layer.cols);
    for (size_t j = 0; j < layer.alpha.size(); ++j) {
      const float a = half_to_float(layer.alpha[j]);
      if (!(a > 0.0f) || !std::isfinite(a))
        fail(ErrorKind::kBadInput, "{}: alpha {} of column {} is not positive and finite", what, a,
             j);
    }
  }
}

Tensor dequantize(const LutLayer& layer) {
  validate(layer, "LUT layer");
  Tensor w({layer.rows, layer.cols});
  std::vector<float> alpha(static_cast<size_t>(layer.cols), 1.0f);
  for (size_t j = 0; j < layer.alpha.size(); ++j) alpha[j] = half_to_float(layer.alpha[j]);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < layer.rows; ++i) {
    const uint16_t* lut = layer.codebook.data() + layer.codebook_offset[static_cast<size_t>(i)];
    const uint8_t* l = layer.labels.data() + i * layer.cols;
    float* out = w.data() + i * layer.cols;
    for (int64_t j = 0; j < layer.cols; ++j)
      out[j] = half_to_float(lut[l[j]]) / alpha[static_cast<size_t>(j)];
  }
  return w;
}

}  // namespace skim::quant
