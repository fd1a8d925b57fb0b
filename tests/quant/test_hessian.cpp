// Hessian accumulation over batches against a direct double sum; damping and dead columns.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "src/core/error.h"
#include "src/quant/hessian.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

TEST(Hessian, BatchedAccumulationMatchesDirectSum) {
  const int64_t cols = 48, tokens = 700;
  testing::SyntheticRng rng(41);
  std::vector<float> x(tokens * cols);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < cols; ++j)
      x[t * cols + j] = static_cast<float>(rng.normal() * (1 + j % 5) + (j == 3 ? 30.0 : 0.0));
  HessianAccumulator acc(cols), a1(cols), a2(cols);
  for (int64_t t0 = 0; t0 < tokens; t0 += 128)
    acc.add(x.data() + t0 * cols, std::min<int64_t>(128, tokens - t0));
  a1.add(x.data(), 300);
  a2.add(x.data() + 300 * cols, tokens - 300);
  a1.merge(a2);
  EXPECT_EQ(acc.tokens(), tokens);
  EXPECT_EQ(a1.tokens(), tokens);
  const Tensor h = acc.mean();
  const Tensor h2 = a1.mean();
  for (int64_t a = 0; a < cols; ++a) {
    for (int64_t b = 0; b < cols; ++b) {
      double s = 0.0;
      for (int64_t t = 0; t < tokens; ++t)
        s += static_cast<double>(x[t * cols + a]) * x[t * cols + b];
      s /= tokens;
      const double tol = 1e-6 * std::sqrt(static_cast<double>(h.at(a, a)) * h.at(b, b));
      EXPECT_NEAR(h.at(a, b), s, tol);
      EXPECT_NEAR(h2.at(a, b), s, tol);
      EXPECT_EQ(h.at(a, b), h.at(b, a));
    }
  }
}

TEST(Hessian, DampingAndDeadColumns) {
  Tensor h({3, 3}, {4, 1, 0, 1, 2, 0, 0, 0, 0});
  EXPECT_EQ(dead_columns(h), std::vector<int64_t>{2});
  const double add = damp_hessian(h);
  EXPECT_DOUBLE_EQ(add, 0.01 * 6.0 / 3.0);
  EXPECT_FLOAT_EQ(h.at(0, 0), 4.02f);
  EXPECT_FLOAT_EQ(h.at(2, 2), 0.02f);
  EXPECT_FLOAT_EQ(h.at(0, 1), 1.0f);
  EXPECT_TRUE(dead_columns(h).empty());
  Tensor zero({2, 2});
  EXPECT_DOUBLE_EQ(damp_hessian(zero), 1.0);
  EXPECT_THROW(HessianAccumulator(4).mean(), Error);
}

}  // namespace
}  // namespace skim::quant
