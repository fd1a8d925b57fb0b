#pragma once
// Random packed LUT layers with mixed bit-widths, for the GPU layout and product tests.
#include <cstdint>
#include <random>
#include <vector>

#include "src/core/half.h"
#include "src/quant/packed_layer.h"

namespace skim::testing {

// Row widths drawn from `widths`; LUT entries ~ N(0, 1), alpha in [0.5, 2] when `with_alpha`.
inline quant::PackedLutLayer random_lut_layer(int64_t rows, int64_t cols,
                                              const std::vector<int>& widths, bool with_alpha,
                                              uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> scale(0.5f, 2.0f);
  std::uniform_int_distribution<size_t> pick(0, widths.size() - 1);
  quant::PackedLutLayer p;
  p.rows = rows;
  p.cols = cols;
  p.bits.resize(static_cast<size_t>(rows));
  for (auto& b : p.bits) b = static_cast<uint8_t>(widths[pick(rng)]);
  const quant::PackedLutOffsets o = quant::packed_lut_offsets(cols, p.bits);
  p.codebook.resize(static_cast<size_t>(o.codebook.back()));
  for (auto& c : p.codebook) c = float_to_half(normal(rng));
  p.labels.assign(static_cast<size_t>(o.label.back()), 0);
  std::vector<uint8_t> labels(static_cast<size_t>(cols));
  for (int64_t i = 0; i < rows; ++i) {
    const int b = p.bits[static_cast<size_t>(i)];
    std::uniform_int_distribution<int> label(0, (1 << b) - 1);
    for (auto& l : labels) l = static_cast<uint8_t>(label(rng));
    quant::pack_row(labels.data(), cols, b, p.labels.data() + o.label[static_cast<size_t>(i)]);
  }
  if (with_alpha) {
    p.alpha.resize(static_cast<size_t>(cols));
    for (auto& a : p.alpha) a = float_to_half(scale(rng));
  }
  return p;
}

// Dense W^[i][j] = LUT_i[label_ij] / alpha_j, from the packed form by plain loops.
inline std::vector<float> dense_weights(const quant::PackedLutLayer& p) {
  const quant::PackedLutOffsets o = quant::packed_lut_offsets(p.cols, p.bits);
  std::vector<float> w(static_cast<size_t>(p.rows * p.cols));
  std::vector<uint8_t> labels(static_cast<size_t>(p.cols));
  for (int64_t i = 0; i < p.rows; ++i) {
    const auto ii = static_cast<size_t>(i);
    quant::unpack_row(p.labels.data() + o.label[ii], p.cols, p.bits[ii], labels.data());
    for (int64_t j = 0; j < p.cols; ++j) {
      const float lut = half_to_float(
          p.codebook[static_cast<size_t>(o.codebook[ii] + labels[static_cast<size_t>(j)])]);
      const float a = p.alpha.empty() ? 1.0f : half_to_float(p.alpha[static_cast<size_t>(j)]);
      w[static_cast<size_t>(i * p.cols + j)] = lut / a;
    }
    if (!p.sparse.empty())
      for (int64_t k = p.sparse.row_ptr[ii]; k < p.sparse.row_ptr[ii + 1]; ++k)
        w[static_cast<size_t>(i * p.cols + p.sparse.cols[static_cast<size_t>(k)])] +=
            half_to_float(p.sparse.values[static_cast<size_t>(k)]);
  }
  return w;
}

}  // namespace skim::testing
