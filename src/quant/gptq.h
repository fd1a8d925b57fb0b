#pragma once
// GPTQ (Frantar et al. 2022) with uniform per-row or per-group quantizers: columns are quantized
// one at a time and each column's rounding error, scaled by the upper Cholesky factor U of H^-1,
// is pushed onto the columns not yet quantized. Columns are processed in blocks; the updates of
// the columns beyond a block are applied once per block as one GEMM (lazy batch updates).
//
// Follows the reference implementation: dead columns (H_jj == 0) get H_jj = 1 and a zero weight
// column; optional act-order processes columns by descending H_jj; H += damp * mean(diag H) * I;
// U = chol_upper(chol_inverse(chol(H))). Per-row quantizer parameters come from the original row;
// per-group parameters from the group's current (error-updated) weights when the group starts,
// groups being consecutive columns in processing order. Where the reference would read stale
// weights (a group starting mid-block and ending past it) we cut the block at the group start,
// so the result equals the column-by-column algorithm for every group size.
#include <cstdint>
#include <span>

#include "src/core/tensor.h"
#include "src/quant/uniform_layer.h"

namespace skim::quant {

struct GptqOptions {
  int bits = 4;              // 2..8
  int64_t group_size = 0;    // 0: one group per row
  bool act_order = false;    // process columns by descending H_jj
  int64_t block_size = 128;  // columns per lazy-update block
  double damp = 0.01;        // relative damping of diag H
};

// `w` is [rows, cols]; `h` is the [cols, cols] Hessian (row-major, undamped, symmetric).
// Throws kBadInput for shapes, options or non-finite values, kNumeric when the damped H is not
// positive definite.
UniformLayer gptq_quantize(const Tensor& w, std::span<const double> h, const GptqOptions& options);
UniformLayer gptq_quantize(const Tensor& w, const Tensor& h, const GptqOptions& options);

}  // namespace skim::quant
