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
//
// Two additions serve SliM-LLM (src/quant/slim.h): per-group widths, and per-(row, group)
// parameters chosen by a clipping search.
#include <cstdint>
#include <span>
#include <vector>

#include "src/core/tensor.h"
#include "src/quant/uniform_layer.h"

namespace skim::quant {

struct GptqOptions {
  int bits = 4;              // 2..8
  int64_t group_size = 0;    // 0: one group per row
  bool act_order = false;    // process columns by descending H_jj
  int64_t block_size = 128;  // columns per lazy-update block
  double damp = 0.01;        // relative damping of diag H
  // Each column group's width (needs group_size > 0, a multiple of 8, and no act-order); empty:
  // every group at `bits`.
  std::vector<uint8_t> group_bits;
  // Each (row, group)'s range scaled by the factor of kClipFactors whose grid gives the least
  // rounding error of the group's weights (as they stand when the group starts), each weight's
  // error divided by U_jj^2 as in the error feedback; ties go to the smaller factor.
  bool clip_search = false;
};

inline constexpr double kClipFactors[] = {0.90, 0.92, 0.94, 0.96, 0.98, 1.00,
                                          1.02, 1.04, 1.06, 1.08, 1.10};

// What GPTQ takes from H, computed once and shared by every quantization with the same Hessian.
struct GptqFactor {
  int64_t n = 0;
  std::vector<char> dead;     // [n] H_jj == 0: the column is zeroed
  std::vector<int32_t> perm;  // [n] processing order: perm[k] = column processed k-th
  bool act_order = false;
  std::vector<float> u;  // [n, n] upper Cholesky factor of the damped, permuted H^-1
};

// `h` is [n, n] (row-major, undamped, symmetric). Throws kBadInput for non-finite entries,
// kNumeric when the damped H is not positive definite.
GptqFactor gptq_factor(std::span<const double> h, int64_t n, double damp, bool act_order);

// Act-order's processing order: columns by descending H_jj (stable; a dead column, H_jj == 0,
// counts as 1). perm[k] = column processed k-th.
std::vector<int32_t> act_order_permutation(std::span<const double> h, int64_t n);

// `w` is [rows, cols]; `h` is the [cols, cols] Hessian (row-major, undamped, symmetric).
// Throws kBadInput for shapes, options or non-finite values, kNumeric when the damped H is not
// positive definite.
UniformLayer gptq_quantize(const Tensor& w, std::span<const double> h, const GptqOptions& options);
UniformLayer gptq_quantize(const Tensor& w, const Tensor& h, const GptqOptions& options);
// With a factor of w's Hessian; options.act_order and options.damp are the factor's.
UniformLayer gptq_quantize(const Tensor& w, const GptqFactor& factor, const GptqOptions& options);

}  // namespace skim::quant
