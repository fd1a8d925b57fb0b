#pragma once
// A row quantized to a uniform grid instead of a K-means LUT: minimise
// sum_j g_j (u_j - lo - step * l_j)^2 over lo, step >= 0 and labels l_j in [0, k-1]. Such a row
// stores only lo and step (a grid row, lut_layer.h), so at 5+ bits, where a LUT's entries cost
// most, the allocator can buy a wider grid for the price of a narrower LUT.
#include <cstdint>
#include <span>
#include <vector>

namespace skim::quant {

struct GridFit {
  double lo = 0.0;
  double step = 0.0;            // >= 0
  std::vector<uint8_t> labels;  // [n], each the nearest grid point, clamped to [0, k-1]
  double objective = 0.0;       // sum_j g_j (u_j - lo - step l_j)^2, in double
};

// Alternates nearest-point labels and the weighted least-squares (lo, step) for those labels
// (each step lowers the objective, like Lloyd's) from several clipped ranges of the row, and keeps
// the best. k in [1, 256]; g >= 0 (all zero: uniform weights).
GridFit fit_grid(std::span<const float> u, std::span<const float> g, int k);

// The objective of (lo, step) with every value at its nearest grid point (what fit_grid returns
// for its own lo and step), in double; labels written when not null.
double grid_objective(std::span<const float> u, std::span<const float> g, int k, double lo,
                      double step, uint8_t* labels = nullptr);

}  // namespace skim::quant
