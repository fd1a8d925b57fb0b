#pragma once
// Error tables of SKIM's bit allocation: E[i][b] = dw_i H dw_i^T, the full-Hessian error of
// row i when it is quantized alone by weighted K-means at b bits and its LUT stored as the
// output stores it (fp16, q8 or d8 entries), for every b in [b_min, b_max]. One table column is a
// GEMM: E[:, b] = rowsum((dW_b H) .* dW_b).
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "src/core/tensor.h"
#include "src/quant/kmeans1d.h"
#include "src/quant/lut_layer.h"
#include "src/quant/sparse_part.h"

namespace skim::quant {

// The K-means weights f_ij: f[i * row_stride + j]; row_stride 0 shares one vector [cols] over
// all rows (the default f_ij = H_jj is one per column).
struct ImportanceView {
  const float* values = nullptr;
  int64_t row_stride = 0;
  std::span<const float> row(int64_t i, int64_t cols) const {
    return {values + i * row_stride, static_cast<size_t>(cols)};
  }
};

struct ErrorTable {
  int64_t rows = 0;
  int b_min = 1;
  int b_max = 4;
  std::vector<double> e;       // [rows * levels()], row-major
  std::vector<double> e_grid;  // the same for grid rows (grid_fit.h), or empty: none offered
  // LUT rows with reserved weights (--outliers auto): e_reserved[l - 1] is e with
  // reserve_counts[l - 1] weights of every row reserved (split_outliers) and stored exactly.
  std::vector<int64_t> reserve_counts;
  std::vector<std::vector<double>> e_reserved;

  int levels() const { return b_max - b_min + 1; }
  bool has_grid() const { return !e_grid.empty(); }
  int reserve_levels() const { return 1 + static_cast<int>(reserve_counts.size()); }
  double at(int64_t i, int b) const { return e[static_cast<size_t>(i * levels() + b - b_min)]; }
  double& at(int64_t i, int b) { return e[static_cast<size_t>(i * levels() + b - b_min)]; }
  double at(int64_t i, int b, bool grid, int reserve_level = 0) const {
    const auto& part = reserve_level > 0 ? e_reserved[static_cast<size_t>(reserve_level - 1)]
                       : grid            ? e_grid
                                         : e;
    return part[static_cast<size_t>(i * levels() + b - b_min)];
  }
};

// Builds the table for W [rows, cols] and a (damped) H [cols, cols]. Rows are processed in
// blocks, so memory stays at a few blocks of W whatever the layer size. `exact`: positions
// stored exactly beside the LUT (reserved weights), whose error is zero; null: none.
ErrorTable build_error_table(const Tensor& w, const Tensor& h, ImportanceView f, int b_min,
                             int b_max, KMeansSolver solver = KMeansSolver::kLloyd,
                             LutEntries entries = LutEntries::kF16,
                             const SparsePart* exact = nullptr);

// Fills table.e_grid: row i at b bits as a grid row, fit_grid with the weights f, dequantized with
// fp16 lo and step as a q8 grid decodes them. CPU only (a grid fit is cheap; the GEMMs are not,
// but they are the same count as build_error_table's).
void add_grid_errors(ErrorTable& table, const Tensor& w, const Tensor& h, ImportanceView f);

// What builds an error table: build_error_table, or a device twin the pipeline supplies (quant/
// may not depend on the GPU code, which depends on quant/).
using ErrorTableBuilder = std::function<ErrorTable(
    const Tensor& w, const Tensor& h, ImportanceView f, int b_min, int b_max, KMeansSolver solver,
    LutEntries entries, const SparsePart* exact)>;

// Row i of W quantized by K-means at k centroids and dequantized with its LUT as stored.
void kmeans_dequantized_row(std::span<const float> w, const KMeans1dResult& km, LutEntries entries,
                            float* out);

}  // namespace skim::quant
