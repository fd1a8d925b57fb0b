#pragma once
// SliM-LLM (Huang et al. 2024): GPTQ with salience-driven mixed precision per column group.
//
// Groups are runs of `group_size` consecutive columns. A column's salience is sum_i w_ij^2 /
// U_jj^2 (U the upper Cholesky factor of the damped H^-1 that GPTQ uses; zero for a dead column),
// a group's the sum of its columns'. Of the full groups, the N most salient get b+1 bits and the
// N least salient b-1, the rest (and a last, shorter group) b, so the average width is exactly b.
// The widths are stored for every layer, N = 0 included (8 bits per group).
// N is chosen per layer among the candidates by the layer's output error tr(dW H dW^T) on the
// calibration inputs (the paper measures the KL divergence of the softmaxed outputs; the pipeline
// keeps only H, and this is the output error H can give); ties go to the smaller N. Every
// candidate is quantized by GPTQ with the clipping search (GptqOptions::clip_search).
//
// Rows may be split over ranks (RowGroup): salience and errors are summed over every row in row
// order, so every rank picks the same N and the rows do not depend on the split.
#include <cstdint>
#include <span>
#include <vector>

#include "src/core/tensor.h"
#include "src/quant/gptq.h"
#include "src/quant/row_group.h"
#include "src/quant/uniform_layer.h"

namespace skim::quant {

struct SlimOptions {
  int bits = 3;                // the average width b, 2..7 (groups at b-1, b and b+1)
  int64_t group_size = 128;    // a multiple of 8
  double damp = 0.01;          // relative damping of diag H
  int64_t max_candidates = 8;  // values of N tried per layer (>= 2: 0 and the largest included)
};

struct SlimResult {
  UniformLayer layer;        // this rank's rows (empty when it holds none)
  int64_t moved_groups = 0;  // N: groups at b+1, and as many at b-1
  double error = 0.0;        // tr(dW H dW^T) over every row, H undamped
};

// w: this rank's rows [rows of the block, cols]; h: [cols, cols] undamped Hessian.
SlimResult slim_quantize(const Tensor& w, const Tensor& h, const SlimOptions& options,
                         RowGroup& group);

// Salience of every group [ceil(cols / group_size)], summed over all rows of the group.
std::vector<double> slim_group_salience(const Tensor& w, const GptqFactor& factor,
                                        int64_t group_size, RowGroup& group);

// Widths of the groups for N moved groups: the N most salient full groups at bits + 1, the N
// least salient at bits - 1 (ties in salience: the lower group index counts as more salient).
std::vector<uint8_t> slim_group_bits(std::span<const double> salience, int64_t cols,
                                     int64_t group_size, int bits, int64_t moved);

// The values of N tried for `full_groups` full groups: 0..full_groups / 2, or that many evenly
// spaced values (rounded, with 0 and the largest) when there are more than max_candidates.
std::vector<int64_t> slim_candidates(int64_t full_groups, int64_t max_candidates);

}  // namespace skim::quant
