#pragma once
// SKIM's full-Hessian LUT refinement: with each row's labels and the scale vector alpha fixed,
// row i's LUT c_i minimises (P_i^T c_i - w_i) H (P_i^T c_i - w_i)^T, P_i[q][j] = [l_ij = q] /
// alpha_j, whose normal equations are a_i c_i = rhs_i with a_i = P_i H P_i^T (k_i x k_i) and
// rhs_i = P_i H w_i^T. Building them is the work (one GEMM P H per block of rows, sum of LUT
// sizes x cols x cols per layer); the solves are small. The builder is a hook so the GPU's
// (pipeline/quant_device_steps.h) can stand in for the CPU's.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "src/core/tensor.h"

namespace skim::quant {

// One layer's refinement problem. k[i] = LUT size of row i; alpha [cols].
struct RefineProblem {
  const Tensor& w;
  const Tensor& h;
  std::span<const uint8_t> labels;
  std::span<const float> alpha;
  std::span<const int> k;
};

// One block of rows [first, first + count) and where their data sit: row first + r's lines of
// the block's stacked P start at line_off[r] (count + 1 entries, a padded layout: below), its
// system at a_off[r] in `a` (row-major k x k) and rhs_off[r] in `rhs` (count + 1 entries each).
struct RefineBlock {
  int64_t first = 0;
  int64_t count = 0;
  std::span<const int64_t> line_off, a_off, rhs_off;
};

// Writes the block's systems in double into a [a_off[count]] and rhs [rhs_off[count]].
using RefineSystemsFn =
    std::function<void(const RefineBlock& block, std::vector<double>& a, std::vector<double>& rhs)>;
// Makes one for a problem that outlives it.
using RefineSystemsMaker = std::function<RefineSystemsFn(const RefineProblem&)>;

// 1 / alpha_j as fp32, the factors of P: one rule for the CPU's builder and the GPU's.
std::vector<float> inverse_alpha(std::span<const float> alpha);

// The CPU's builder: P of the block, one BLAS GEMM, the sums over each row's columns in order.
RefineSystemsFn cpu_refine_systems(const RefineProblem& p);

// Each row's LUT (in the scaled space) minimising its full-Hessian error; rows whose system is
// singular keep their given LUT. A grid row (grid[i] != 0) gets the best evenly spaced LUT lo +
// step q instead. Works in place on `lut` ([rows] vectors of k[i] values). `systems` (null:
// cpu_refine_systems) builds the normal equations block by block; the solves run here.
void refine_luts_full_hessian(const Tensor& w, const Tensor& h, std::span<const uint8_t> labels,
                              std::span<const float> alpha, std::vector<std::vector<double>>& lut,
                              std::span<const uint8_t> grid = {},
                              const RefineSystemsMaker& systems = {});

}  // namespace skim::quant
