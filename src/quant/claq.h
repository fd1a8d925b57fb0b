#pragma once
// CLAQ (Wang et al. 2024): K-means centroids per input column inside GPTQ's error feedback,
// outlier-guided column widths and outlier reservation.
//
// Columns are processed in order (no act-order) with GPTQ's factor U of the damped H^-1: column
// j's current weights, except its reserved ones, are clustered by 1-D K-means into 2^b_j fp16
// centroids (every row of a column shares H_jj, so the K-means is unweighted), each weight takes
// its nearest centroid, and the rounding error divided by U_jj is pushed onto the later columns
// (lazy block updates as in gptq.h). A column's outlier order is its count of |w_ij| >=
// kOutlierRatio * mean |W| in the original weights; the `floor(frac(bits) * cols)` columns of
// highest order (ties: lower index) get floor(bits) + 1 bits, the rest floor(bits), so the
// average width never exceeds `bits`. Reservation
// keeps a fraction of each column in fp16 as sparse corrections, half from each tail of the
// column's current values: the tenth of the columns of highest order keep 2.8 x `outliers` of
// their rows, the others 0.8 x (so `outliers` of all weights), as the paper's 1.4% / 0.4%.
//
// Rows split over ranks (RowGroup): CLAQ needs every row of a column for its K-means, so each
// rank gathers the whole weight and runs the same computation (no speed-up from more ranks;
// the result does not depend on their number) and keeps its own rows.
#include <cstdint>

#include "src/core/tensor.h"
#include "src/quant/kmeans1d.h"
#include "src/quant/packed_layer.h"
#include "src/quant/row_group.h"

namespace skim::quant {

inline constexpr double kOutlierRatio = 13.0;

struct ClaqOptions {
  double bits = 3.0;      // average code width over the columns, in [1, 8]
  double outliers = 0.0;  // fraction of the weights reserved, in [0, 0.25]
  double damp = 0.01;
  int64_t block_size = 128;  // columns per lazy-update block
  KMeansSolver solver = KMeansSolver::kLloyd;
};

// Each column's width from the outlier orders (exposed for the tests).
std::vector<uint8_t> claq_column_bits(const Tensor& w, double bits);

// w [rows, cols] (every row), h [cols, cols] undamped. Throws kBadInput for shapes, options and
// non-finite values, kNumeric when the damped H is not positive definite.
PackedColumnLutLayer claq_quantize(const Tensor& w, const Tensor& h, const ClaqOptions& options);

// This rank's rows w [rows of its block, cols]: gathers the others', quantizes the whole
// weight, returns the block's rows (empty layer when the block has none).
PackedColumnLutLayer claq_quantize(const Tensor& w, const Tensor& h, const ClaqOptions& options,
                                   RowGroup& group);

}  // namespace skim::quant
