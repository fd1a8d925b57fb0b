#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/cpu/qdec.h"
#include "src/core/error.h"
#include "src/core/half.h"
#include "src/quant/residual.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

Tensor random_residual(int64_t rows, int64_t cols, uint64_t seed) {
  Tensor r({rows, cols}, testing::synthetic_weights(rows, cols, seed));
  for (int64_t j = 0; j < cols; ++j) r.at(0, j) = 0.0f;  // an all-zero row
  return r;
}

// The definition, written out: per row, the best scale of the grid by squared error, each code
// round(r / s) clamped to -8..7.
TEST(Residual, QuantizesEachRowAtTheBestScaleOfTheGrid) {
  const int64_t rows = 9, cols = 37;  // odd rows: a padding nibble per channel
  const Tensor r = random_residual(rows, cols, 3);
  const ResidualLayer q = quantize_residual(r);
  ASSERT_EQ(q.codes.size(), static_cast<size_t>(cols * 5));
  const Tensor deq = dequantize(q);
  for (int64_t i = 0; i < rows; ++i) {
    double peak = 0.0;
    for (int64_t j = 0; j < cols; ++j) peak = std::max(peak, std::fabs(double{r.at(i, j)}));
    double best = -1.0;
    uint16_t best_scale = 0;
    for (int f = 60; f <= 100; f += 5) {
      const uint16_t h =
          float_to_half(static_cast<float>(f / 100.0) * static_cast<float>(peak) / 7.0f);
      const double s = half_to_float(h);
      double e = 0.0;
      for (int64_t j = 0; j < cols; ++j) {
        const double c = s == 0.0 ? 0.0 : std::clamp(std::nearbyint(r.at(i, j) / s), -8.0, 7.0);
        e += (r.at(i, j) - s * c) * (r.at(i, j) - s * c);
      }
      if (best < 0.0 || e < best) {
        best = e;
        best_scale = h;
      }
    }
    EXPECT_EQ(q.scale[i], best_scale) << "row " << i;
    double e = 0.0;
    for (int64_t j = 0; j < cols; ++j)
      e += (r.at(i, j) - deq.at(i, j)) * (r.at(i, j) - deq.at(i, j));
    EXPECT_NEAR(e, best, 1e-6 * best + 1e-15) << "row " << i;  // R^ in fp32
  }
  for (int64_t j = 0; j < cols; ++j) EXPECT_EQ(deq.at(0, j), 0.0f);
  EXPECT_EQ(stored_bits(q), 4 * rows * cols + 16 * rows);
}

TEST(Residual, OneInputChannelIsOneContiguousRun) {
  const int64_t rows = 5, cols = 3;
  Tensor r({rows, cols});
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) r.at(i, j) = static_cast<float>((i + 2 * j) % 8 - 3);
  const ResidualLayer q = quantize_residual(r);
  const int64_t stride = 3;  // ceil(5 / 2)
  const Tensor deq = dequantize(q);
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t i = 0; i < rows; ++i) {
      const uint8_t b = q.codes[j * stride + i / 2];
      const int code = i % 2 == 0 ? b & 15 : b >> 4;
      EXPECT_EQ(deq.at(i, j), half_to_float(q.scale[i]) * static_cast<float>(code - 8));
    }
  for (int64_t j = 0; j < cols; ++j) EXPECT_EQ(q.codes[j * stride + 2] >> 4, 0) << j;
}

TEST(Residual, TopKChannelsByHand) {
  const std::vector<float> x = {0.5f, -3.0f, 2.0f, 3.0f, std::nanf(""), -0.1f};
  std::vector<int32_t> s(3);
  kernels::top_k_channels(x.data(), 6, 3, s.data());
  EXPECT_EQ(s, (std::vector<int32_t>{1, 2, 3}));  // |-3| = |3|: both, ascending
  s.resize(2);
  kernels::top_k_channels(x.data(), 6, 2, s.data());
  EXPECT_EQ(s, (std::vector<int32_t>{1, 3}));
  s.resize(6);
  kernels::top_k_channels(x.data(), 6, 6, s.data());
  EXPECT_EQ(s, (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
}

// The correction against a dense computation: y += R^[:, S] x_S with S from a full sort.
TEST(Residual, TopKCorrectionEqualsDenseProduct) {
  const int64_t rows = 21, cols = 50, tokens = 4;
  const ResidualLayer q = quantize_residual(random_residual(rows, cols, 7));
  const Tensor deq = dequantize(q);
  std::vector<float> x(static_cast<size_t>(tokens * cols));
  testing::SyntheticRng rng(11);
  for (float& v : x) v = static_cast<float>(rng.normal());
  x[7] = 40.0f;  // an outlier channel
  for (int64_t k : {0, 1, 5, 50}) {
    std::vector<float> y(static_cast<size_t>(tokens * rows), 1.0f);
    const ResidualCorrector corrector(q);
    corrector.apply(x.data(), tokens, k, y.data());
    for (int64_t t = 0; t < tokens; ++t) {  // one token at a time (decode): the same values
      std::vector<float> one(static_cast<size_t>(rows), 1.0f);
      corrector.apply(x.data() + t * cols, 1, k, one.data());
      for (int64_t i = 0; i < rows; ++i) ASSERT_EQ(one[i], y[t * rows + i]) << t << " " << i;
    }
    for (int64_t t = 0; t < tokens; ++t) {
      std::vector<int64_t> order(cols);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return std::fabs(x[t * cols + a]) > std::fabs(x[t * cols + b]);
      });
      for (int64_t i = 0; i < rows; ++i) {
        double ref = 1.0, mag = 0.0;
        for (int64_t s = 0; s < k; ++s) {
          const int64_t j = order[s];
          ref += double{deq.at(i, j)} * x[t * cols + j];
          mag += std::fabs(double{deq.at(i, j)} * x[t * cols + j]);
        }
        EXPECT_NEAR(y[t * rows + i], ref, 1e-5 * mag + 1e-6)
            << "k " << k << " token " << t << " row " << i;
      }
    }
  }
  std::vector<float> y(static_cast<size_t>(tokens * rows));
  EXPECT_THROW(ResidualCorrector(q).apply(x.data(), tokens, cols + 1, y.data()), Error);
}

TEST(Residual, RefusesNonFiniteInput) {
  Tensor r({2, 2});
  r.at(1, 1) = std::nanf("");
  EXPECT_THROW(quantize_residual(r), Error);
  r.at(1, 1) = 1e6f;  // beyond fp16
  EXPECT_THROW(quantize_residual(r), Error);
}

}  // namespace
}  // namespace skim::quant
