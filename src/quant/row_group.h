#pragma once
// The rows of one linear split over the ranks that quantize it together (row parallelism).
//
// Every method treats rows on their own except where they share something: skim's error table
// (the allocation needs every row's), its scale vector (one gradient summed over all rows) and
// the layer errors that decide between candidates. Those couplings go through a RowGroup, so a
// method runs unchanged on one process holding every row (WholeRows) or on a block of rows.
//
// Blocks are whole units of kRowUnit rows in rank order. Per-row results then do not depend on
// the split: every GEMM call over rows starts at a multiple of kRowUnit, so a row keeps its place
// in the BLAS kernel's panel (kernels::kRowAlign), and sums over rows are taken in the same order
// (ordered_sum).
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cpu/blas.h"

namespace skim::quant {

inline constexpr int64_t kRowUnit = kernels::kRowAlign;

// Rows [first, first + count) of `total`.
struct RowBlock {
  int64_t first = 0;
  int64_t count = 0;
  int64_t total = 0;
};

// Rank `rank` of `ranks`: rows from the multiple of kRowUnit nearest to rank * rows / ranks (ties
// to the lower) to the next rank's start, so blocks are within kRowUnit / 2 rows of an even
// share at each end; the last block ends at `rows`. A rank may get no rows.
RowBlock row_block(int64_t rows, int rank, int ranks);

class RowGroup {
 public:
  explicit RowGroup(RowBlock block) : block_(block) {}
  virtual ~RowGroup() = default;
  RowGroup(const RowGroup&) = delete;
  RowGroup& operator=(const RowGroup&) = delete;

  const RowBlock& block() const { return block_; }

  // `groups` consecutive partials of `width` values each, this rank's in global order; every
  // rank gets out[width] = ((0 + p_0) + p_1) + ... + p_last over all ranks' partials.
  virtual void ordered_sum(const double* partials, int64_t groups, int64_t width, double* out) = 0;
  // Every rank's values, concatenated in rank order (row order).
  virtual std::vector<double> all_gather(std::span<const double> mine) = 0;

 private:
  RowBlock block_;
};

// One process holds every row of the linear.
class WholeRows final : public RowGroup {
 public:
  explicit WholeRows(int64_t rows) : RowGroup({0, rows, rows}) {}
  void ordered_sum(const double* partials, int64_t groups, int64_t width, double* out) override;
  std::vector<double> all_gather(std::span<const double> mine) override;
};

// Sum of one value per row (errors, energies) over the whole group, in row order.
double sum_over_rows(RowGroup& group, std::span<const double> per_row);

}  // namespace skim::quant
