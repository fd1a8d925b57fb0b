#pragma once
// The sparse part of a LUT layer (outlier reservation): a few weights per row kept apart from the
// K-means. The LUT part is computed on the weights with those entries set to the row's mean, and
// the sparse part stores, at each reserved position, the fp16 correction w_ij - LUT(W)_ij. So
// W^ = LUT part + sparse part, every product is the LUT product plus one sparse add, and a
// reserved weight is reproduced up to the fp16 rounding of its correction.
//
// Storage (CSR): row_ptr [rows + 1], cols [nnz] ascending within a row, values [nnz] fp16. Cost:
// per entry 16 (value) + 16 (column; 32 when the layer has more than 65536 columns), per row its
// count (8 bits, or 16 / 32 when a row holds more than 255 / 65535) when the layer has a sparse
// part at all.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "src/core/error.h"
#include "src/core/half.h"
#include "src/core/tensor.h"

namespace skim::quant {

struct SparsePart {
  std::vector<int64_t> row_ptr;  // [rows + 1], or empty: no sparse part
  std::vector<int32_t> cols;     // [nnz]
  std::vector<uint16_t> values;  // [nnz] fp16

  bool empty() const { return row_ptr.empty(); }
  int64_t nnz() const { return static_cast<int64_t>(cols.size()); }
};

inline int64_t sparse_column_bits(int64_t cols) {
  return cols > 65536 ? 32 : 16;
}

// Reserved weights per row for a fraction of the columns (--outliers), rounded to nearest.
inline int64_t reserved_per_row(int64_t cols, double fraction) {
  return std::min(cols, static_cast<int64_t>(std::llround(fraction * static_cast<double>(cols))));
}

// Stored bits of one reserved weight: its fp16 correction and its column.
inline int64_t sparse_entry_bits(int64_t cols) {
  return 16 + sparse_column_bits(cols);
}

// The counts per row the allocation may choose from (--outliers auto), besides none: about 1/512,
// 1/128 and 1/32 of the columns, at least 1, distinct and ascending. A count costs
// sparse_entry_bits each, so the allocator takes one only where it lowers the error more per bit
// than a wider LUT would.
std::vector<int64_t> reserve_menu(int64_t cols);

// Stored bits of one row's count: the narrowest of U8, U16 and I32 that holds the largest count.
inline int64_t sparse_count_bits(int64_t max_count) {
  return max_count <= 255 ? 8 : max_count <= 65535 ? 16 : 32;
}

// Stored bits of a sparse part of `nnz` entries over [rows, cols], no row holding more than
// `max_count` (0 when nnz == 0 and the part is absent).
inline int64_t sparse_part_bits(int64_t rows, int64_t cols, int64_t nnz, int64_t max_count) {
  return nnz == 0 ? 0 : nnz * sparse_entry_bits(cols) + rows * sparse_count_bits(max_count);
}
inline int64_t max_row_count(const SparsePart& s) {
  int64_t m = 0;
  for (size_t i = 0; i + 1 < s.row_ptr.size(); ++i)
    m = std::max(m, s.row_ptr[i + 1] - s.row_ptr[i]);
  return m;
}
inline int64_t stored_bits(const SparsePart& s, int64_t rows, int64_t cols) {
  return s.empty() ? 0
                   : s.nnz() * sparse_entry_bits(cols) + rows * sparse_count_bits(max_row_count(s));
}

// The `per_row` entries of each row of w with the largest f_j (w_ij - m_i)^2, m_i the row's
// f-weighted mean (ties: the lower column), and w with those entries set to m_i (what the LUT part
// quantizes). `positions` comes back with empty values.
struct OutlierSplit {
  Tensor dense;
  SparsePart positions;
};
OutlierSplit split_outliers(const Tensor& w, std::span<const float> f, int64_t per_row);
// The same with counts[i] entries in row i.
OutlierSplit split_outliers(const Tensor& w, std::span<const float> f,
                            std::span<const int64_t> counts);

// The corrections: values[k] = fp16(w[i][cols[k]] - lut_part[i][cols[k]]).
void set_corrections(SparsePart& s, const Tensor& w, const Tensor& lut_part);

// Shape checks: row_ptr non-decreasing from 0 to nnz, columns ascending within a row and below
// `cols`, finite values; throws kBadInput naming `what`. Inline: io/ checks a file's sparse part
// with this header alone.
inline void validate(const SparsePart& s, int64_t rows, int64_t cols, const std::string& what) {
  if (s.empty()) return;
  if (static_cast<int64_t>(s.row_ptr.size()) != rows + 1 || s.row_ptr.front() != 0 ||
      s.row_ptr.back() != s.nnz() || s.values.size() != s.cols.size())
    fail(ErrorKind::kBadInput,
         "{}: sparse part of {} row pointers (first {}, last {}), {} columns and {} values for {} "
         "rows",
         what, s.row_ptr.size(), s.row_ptr.empty() ? 0 : s.row_ptr.front(),
         s.row_ptr.empty() ? 0 : s.row_ptr.back(), s.cols.size(), s.values.size(), rows);
  for (int64_t i = 0; i < rows; ++i) {
    if (s.row_ptr[i + 1] < s.row_ptr[i] || s.row_ptr[i + 1] > s.nnz())
      fail(ErrorKind::kBadInput, "{}: sparse part: row pointer {} decreases or passes {}", what,
           i + 1, s.nnz());
    for (int64_t k = s.row_ptr[i]; k < s.row_ptr[i + 1]; ++k) {
      const int64_t j = s.cols[k];
      if (j < 0 || j >= cols || (k > s.row_ptr[i] && j <= s.cols[k - 1]))
        fail(ErrorKind::kBadInput,
             "{}: sparse part: row {} column {} is outside [0, {}) or not ascending", what, i, j,
             cols);
      if (!std::isfinite(half_to_float(s.values[k])))
        fail(ErrorKind::kBadInput, "{}: sparse part: row {} column {} is not finite", what, i, j);
    }
  }
}

// w[i][cols[k]] += values[k] (w is [rows, cols] row-major).
void add_to_dense(const SparsePart& s, int64_t cols, float* w);
// y[i] += sum_k values[k] x[cols[k]] over row i's entries.
void gemv_add(const SparsePart& s, const float* x, float* y);
// Y[b][i] += the same for each of `batch` rows of x [batch, cols] and y [batch, rows].
void gemm_add(const SparsePart& s, int64_t rows, int64_t cols, const float* x, int64_t batch,
              float* y);

// Row blocks back into one, in row order (all present or all absent).
SparsePart concat_rows(std::span<const SparsePart> blocks);

}  // namespace skim::quant
