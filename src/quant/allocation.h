#pragma once
// Greedy bit allocation (SKIM Algorithm 1), a multiple-choice knapsack: every row starts at its
// cheapest form; the next upgrade goes to the row whose next step on the lower convex hull of its
// (cost, error) points lowers the error most per stored bit, until the budget is spent. A row's
// forms are its widths b_min..b_max as LUT rows, as grid rows when the table has grid errors and
// entries are q8 or d8, and as LUT rows with each count of reserved weights the table offers
// (each weight costs sparse_entry_bits). Costs are every stored bit: lut_row_cost_bits per row plus
// lut_layer_overhead_bits per layer, so the budget B * (number of weights) is never exceeded.
#include <cstdint>
#include <span>
#include <vector>

#include "src/quant/error_table.h"
#include "src/quant/lut_layer.h"

namespace skim::quant {

struct AllocationOptions {
  // When the best next upgrade does not fit, keep trying cheaper upgrades of other rows
  // (true, the default), or stop there (false: the pure greedy prefix, which is exactly
  // optimal for the bits it spends).
  bool fill_up = true;
  // How the LUTs will be stored: what a row's entries cost.
  LutEntries entries = LutEntries::kF16;
};

struct BitAllocation {
  std::vector<uint8_t> bits;  // [rows] choice bytes: the width, | kGridRow for a grid row
  int64_t cost_bits = 0;      // stored bits, all overhead counted
  int64_t weights = 0;        // rows * cols
  double average_bits = 0.0;  // cost_bits / weights
  double error = 0.0;         // sum of the table errors at the chosen bits (scaled, if any)
};

// One layer meets the budget on its own: cost <= floor(bits_per_weight * rows * cols), the cost
// including `extra_bits` stored beside the rows (a sparse part).
BitAllocation allocate_bits(const ErrorTable& table, int64_t cols, double bits_per_weight,
                            bool has_alpha, const AllocationOptions& options = {},
                            int64_t extra_bits = 0);

// One budget over many layers. Each layer's errors are multiplied by error_scale (e.g.
// 1 / tr(W H W^T), see output_energy) so that layers are compared on one scale.
struct LayerErrors {
  const ErrorTable* table = nullptr;
  int64_t cols = 0;
  bool has_alpha = true;
  double error_scale = 1.0;
  int64_t extra_bits = 0;  // stored beside the rows (a sparse part), counted in the budget
};

struct GlobalAllocation {
  std::vector<BitAllocation> layers;  // per layer, errors scaled
  int64_t cost_bits = 0;
  int64_t budget_bits = 0;
  int64_t weights = 0;
  double average_bits = 0.0;
};

GlobalAllocation allocate_bits_global(std::span<const LayerErrors> layers, double bits_per_weight,
                                      const AllocationOptions& options = {});

}  // namespace skim::quant
