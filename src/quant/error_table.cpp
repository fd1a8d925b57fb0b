#include "src/quant/error_table.h"

#include <algorithm>

#include "kernels/cpu/blas.h"
#include "src/core/error.h"
#include "src/core/fault_hook.h"
#include "src/core/half.h"
#include "src/core/parallel_errors.h"
#include "src/quant/grid_fit.h"
#include "src/quant/layer_error.h"
#include "src/quant/lut_layer.h"

namespace skim::quant {
namespace {

// Below this much work a parallel region costs more than it saves: idle OpenBLAS and OpenMP
// threads spin, and on few cores they steal each other's time.
constexpr int64_t kParallelMinWork = int64_t{1} << 20;

constexpr int64_t kRowBlock = 2 * kernels::kRowAlign;  // calls start at row multiples of it

}  // namespace

void kmeans_dequantized_row(std::span<const float> w, const KMeans1dResult& km, LutEntries entries,
                            float* out) {
  std::vector<float> lut(km.centroids.begin(), km.centroids.end());
  store_lut_entries(entries, lut);
  for (size_t j = 0; j < w.size(); ++j) out[j] = lut[km.labels[j]];
}

namespace {

// out[row * levels + l] = dw H dw^T for every row and level, where deltas(r, d) writes row r's
// dW at every level l to d + l * stride (stride = kRowBlock * cols floats apart). Rows go in
// blocks, each level's column of a block one GEMM.
template <typename Deltas>
void tabulate(const Tensor& w, const Tensor& h, int levels, Deltas deltas,
              std::vector<double>& out) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  out.assign(static_cast<size_t>(rows * levels), 0.0);
  const int64_t block = std::min(rows, kRowBlock);
  std::vector<float> dw(static_cast<size_t>(levels * block * cols));  // [level][row][col]
  std::vector<double> e(static_cast<size_t>(block));
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    const int64_t nr = std::min(kRowBlock, rows - r0);
    ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 4) if (nr * cols >= kParallelMinWork)
    for (int64_t i = 0; i < nr; ++i)
      errors.run([&] { deltas(r0 + i, dw.data() + i * cols, block * cols); });
    errors.rethrow();
    for (int l = 0; l < levels; ++l) {
      row_quadratic_forms(dw.data() + l * block * cols, nr, cols, h.data(), e.data());
      for (int64_t i = 0; i < nr; ++i) out[static_cast<size_t>((r0 + i) * levels + l)] = e[i];
    }
  }
}

}  // namespace

ErrorTable build_error_table(const Tensor& w, const Tensor& h, ImportanceView f, int b_min,
                             int b_max, KMeansSolver solver, LutEntries entries,
                             const SparsePart* exact) {
  if (w.ndim() != 2 || h.ndim() != 2 || h.dim(0) != w.dim(1) || h.dim(1) != w.dim(1))
    fail(ErrorKind::kInternal, "error table: W {} and H {} do not match", w.shape_string(),
         h.shape_string());
  if (b_min < 1 || b_max > 8 || b_min > b_max)
    fail(ErrorKind::kUsage, "error table: bit range [{}, {}] outside [1, 8]", b_min, b_max);
  const int64_t cols = w.dim(1);
  if (exact != nullptr) validate(*exact, w.dim(0), cols, "error table: exact positions");
  ErrorTable t;
  t.rows = w.dim(0);
  t.b_min = b_min;
  t.b_max = b_max;
  const int levels = t.levels();
  std::vector<int> ks(levels);
  for (int l = 0; l < levels; ++l) ks[l] = 1 << (b_min + l);
  tabulate(
      w, h, levels,
      [&](int64_t r, float* d, int64_t stride) {
        fault_hook("row_kmeans");
        const auto wi = w.row(r);
        const auto km = kmeans1d_levels(wi, f.row(r, cols), ks, solver);
        for (int l = 0; l < levels; ++l) {
          kmeans_dequantized_row(wi, km[l], entries, d + l * stride);
          for (int64_t j = 0; j < cols; ++j) d[l * stride + j] -= wi[j];
          if (exact != nullptr && !exact->empty())
            for (int64_t k = exact->row_ptr[r]; k < exact->row_ptr[r + 1]; ++k)
              d[l * stride + exact->cols[k]] = 0.0f;
        }
      },
      t.e);
  return t;
}

void add_grid_errors(ErrorTable& t, const Tensor& w, const Tensor& h, ImportanceView f) {
  const int64_t cols = w.dim(1);
  if (w.dim(0) != t.rows || h.dim(0) != cols)
    fail(ErrorKind::kInternal, "grid errors: W {} for a table of {} rows", w.shape_string(),
         t.rows);
  tabulate(
      w, h, t.levels(),
      [&](int64_t r, float* d, int64_t stride) {
        const auto wi = w.row(r);
        for (int l = 0; l < t.levels(); ++l) {
          const auto fit = fit_grid(wi, f.row(r, cols), 1 << (t.b_min + l));
          const uint16_t lo = float_to_half(static_cast<float>(fit.lo));
          const uint16_t step = float_to_half(static_cast<float>(fit.step));
          for (int64_t j = 0; j < cols; ++j)
            d[l * stride + j] = half_to_float(lut_q8_entry(lo, step, fit.labels[j])) - wi[j];
        }
      },
      t.e_grid);
}

}  // namespace skim::quant
