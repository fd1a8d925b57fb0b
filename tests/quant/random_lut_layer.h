#pragma once
// A LUT layer with mixed per-row bits 1..8 (row i has 1 + i % 8), random LUTs (normal, sd 0.05),
// labels and alpha in [0.5, 2]: shared by the packed-layer and LUT-storage tests.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "src/core/half.h"
#include "src/quant/lut_layer.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant::testing {

inline LutLayer random_lut_layer(int64_t rows, int64_t cols, uint64_t seed, bool with_alpha) {
  SyntheticRng rng(seed);
  LutLayer l;
  l.rows = rows;
  l.cols = cols;
  l.codebook_offset.push_back(0);
  for (int64_t i = 0; i < rows; ++i) {
    const int b = 1 + static_cast<int>(i % 8);
    l.bits.push_back(static_cast<uint8_t>(b));
    for (int k = 0; k < (1 << b); ++k)
      l.codebook.push_back(float_to_half(static_cast<float>(0.05 * rng.normal())));
    l.codebook_offset.push_back(static_cast<int64_t>(l.codebook.size()));
    for (int64_t j = 0; j < cols; ++j)
      l.labels.push_back(static_cast<uint8_t>(rng.next() % (1u << b)));
  }
  if (with_alpha)
    for (int64_t j = 0; j < cols; ++j)
      l.alpha.push_back(float_to_half(static_cast<float>(0.5 + 1.5 * rng.uniform())));
  return l;
}

// A sparse part with row i holding i % 4 entries at random ascending columns (row 0 none) and
// normal values (sd 0.5).
inline SparsePart random_sparse_part(int64_t rows, int64_t cols, uint64_t seed) {
  SyntheticRng rng(seed);
  SparsePart s;
  s.row_ptr.push_back(0);
  for (int64_t i = 0; i < rows; ++i) {
    std::vector<int32_t> picked;
    for (int64_t t = 0; t < std::min<int64_t>(i % 4, cols); ++t) {
      int32_t j;
      do j = static_cast<int32_t>(rng.next() % static_cast<uint64_t>(cols));
      while (std::find(picked.begin(), picked.end(), j) != picked.end());
      picked.push_back(j);
    }
    std::sort(picked.begin(), picked.end());
    for (int32_t j : picked) {
      s.cols.push_back(j);
      s.values.push_back(float_to_half(static_cast<float>(0.5 * rng.normal())));
    }
    s.row_ptr.push_back(s.nnz());
  }
  return s;
}

}  // namespace skim::quant::testing
