#include "kernels/cpu/qdec.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace skim::kernels {

void qdec_correct(const uint8_t* codes, const float* scale, int64_t rows, const float* x,
                  const int32_t* channels, int64_t k, float* acc, float* y) {
  const int64_t stride = qdec_column_bytes(rows);
  std::fill(acc, acc + rows, 0.0f);
  for (int64_t s = 0; s < k; ++s) {
    const int32_t j = channels[s];
    const float xj = x[j];
    const uint8_t* col = codes + static_cast<int64_t>(j) * stride;
    int64_t i = 0;
    for (; i + 1 < rows; i += 2) {
      const uint8_t b = col[i / 2];
      acc[i] += xj * static_cast<float>((b & 15) - 8);
      acc[i + 1] += xj * static_cast<float>((b >> 4) - 8);
    }
    if (i < rows) acc[i] += xj * static_cast<float>((col[i / 2] & 15) - 8);
  }
  for (int64_t i = 0; i < rows; ++i) y[i] += scale[i] * acc[i];
}

void top_k_channels(const float* x, int64_t cols, int64_t k, int32_t* channels) {
  // Per-thread scratch: this runs for every linear at every decode step.
  thread_local std::vector<int32_t> idx;
  thread_local std::vector<float> magnitude;
  idx.resize(static_cast<size_t>(cols));
  magnitude.resize(static_cast<size_t>(cols));
  std::iota(idx.begin(), idx.end(), 0);
  for (int64_t j = 0; j < cols; ++j) {
    const float a = std::fabs(x[j]);
    magnitude[static_cast<size_t>(j)] = std::isnan(a) ? -1.0f : a;
  }
  const auto before = [&](int32_t a, int32_t b) {
    const float ma = magnitude[static_cast<size_t>(a)], mb = magnitude[static_cast<size_t>(b)];
    return ma > mb || (ma == mb && a < b);
  };
  std::nth_element(idx.begin(), idx.begin() + k, idx.end(), before);
  std::sort(idx.begin(), idx.begin() + k);
  std::copy(idx.begin(), idx.begin() + k, channels);
}

}  // namespace skim::kernels
