// kernels::gemv (one token through a linear layer) against a naive double-precision product,
// over shapes that cut its row tiles unevenly, with beta 0 and 1; and the same bits whatever
// the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/blas.h"

namespace skim::kernels {
namespace {

TEST(BlasGemv, MatchesANaiveProductForAnyShapeAndBeta) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> n(0.0f, 1.0f);
  for (const int64_t m : {1, 7, 511, 512, 513, 1500})
    for (const int64_t k : {1, 64, 577})
      for (const float beta : {0.0f, 1.0f}) {
        std::vector<float> a(static_cast<size_t>(m * k)), x(static_cast<size_t>(k)),
            y(static_cast<size_t>(m));
        for (float& v : a) v = n(rng);
        for (float& v : x) v = n(rng);
        for (float& v : y) v = n(rng);
        const std::vector<float> y0 = y;
        gemv(m, k, 0.5f, a.data(), k, x.data(), beta, y.data());
        for (int64_t i = 0; i < m; ++i) {
          double ref = beta * static_cast<double>(y0[i]), mag = std::fabs(ref);
          for (int64_t j = 0; j < k; ++j) {
            const double p = 0.5 * static_cast<double>(a[i * k + j]) * x[j];
            ref += p;
            mag += std::fabs(p);
          }
          // fp32 accumulation of k products: a few ulps of the sum of magnitudes.
          ASSERT_NEAR(y[i], ref, 4.0 * (k + 1) * 6e-8 * mag) << m << "x" << k << " row " << i;
        }
      }
}

TEST(BlasGemv, SameBitsForOneOrTwoThreads) {
  const int64_t m = 1500, k = 577;
  std::mt19937_64 rng(9);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(m * k)), x(static_cast<size_t>(k));
  for (float& v : a) v = n(rng);
  for (float& v : x) v = n(rng);
  std::vector<float> y1(static_cast<size_t>(m)), y2(y1.size());
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  gemv(m, k, 1.0f, a.data(), k, x.data(), 0.0f, y1.data());
  omp_set_num_threads(2);
  gemv(m, k, 1.0f, a.data(), k, x.data(), 0.0f, y2.data());
  omp_set_num_threads(saved);
  EXPECT_EQ(y1, y2);
}

}  // namespace
}  // namespace skim::kernels
