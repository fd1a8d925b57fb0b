#pragma once
// The Hessian of one linear input, H = (1/N) sum_t x_t x_t^T, accumulated over activation
// batches: each batch's x^T x is one fp32 BLAS call, added into an fp64 sum, so long
// calibration runs lose nothing to fp32 accumulation across batches.
#include <cstdint>
#include <vector>

#include "src/core/tensor.h"

namespace skim::quant {

class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t cols);

  int64_t cols() const { return cols_; }
  int64_t tokens() const { return tokens_; }

  // Adds a batch x [tokens, cols] (row-major).
  void add(const float* x, int64_t tokens);
  void add(const Tensor& x);
  // Adds another accumulator's sums (e.g. a partial from another rank, in a fixed order).
  void merge(const HessianAccumulator& other);

  // sum_t x_t x_t^T, full symmetric [cols * cols], double.
  const std::vector<double>& sum() const { return sum_; }
  // H = sum / N as an fp32 tensor [cols, cols], undamped. Fails when no token was added.
  Tensor mean() const;

 private:
  int64_t cols_;
  int64_t tokens_ = 0;
  std::vector<double> sum_;
  std::vector<float> batch_;  // scratch for one batch's x^T x
};

// H += fraction * mean(diag H) * I (in place); returns the amount added to the diagonal. When
// every diagonal entry is zero, adds 1 so that H stays positive definite.
double damp_hessian(Tensor& h, double fraction = 0.01);

// Columns whose input never carried energy (H_jj == 0): no weight there affects the output.
std::vector<int64_t> dead_columns(const Tensor& h);

}  // namespace skim::quant
