#include "src/quant/lut_refinement.h"

#include <lapacke.h>

#include <cmath>

#include "kernels/cpu/blas.h"
#include "src/core/error.h"
#include "src/quant/row_group.h"

namespace skim::quant {
namespace {

// Below this much work a parallel region costs more than it saves (idle threads spin).
constexpr int64_t kParallelMinWork = int64_t{1} << 16;
// Rows per GEMM: the whole layer when it is small, else blocks of about this many elements of P.
constexpr int64_t kBlockElements = int64_t{1} << 23;

// A grid row's LUT is lo + step q: the row's normal equations (a, rhs) projected on (lo, step), a
// 2 x 2 solve. The row keeps its LUT when that system is singular or the step would be negative
// (a q8 grid ascends).
void refine_grid_row(const double* a, const double* rhs, int k, std::vector<double>& lut) {
  double m00 = 0.0, m01 = 0.0, m11 = 0.0, b0 = 0.0, b1 = 0.0;
  for (int q = 0; q < k; ++q) {
    b0 += rhs[q];
    b1 += q * rhs[q];
    for (int z = 0; z < k; ++z) {
      const double v = a[q * k + z];
      m00 += v;
      m01 += v * z;
      m11 += v * q * z;
    }
  }
  const double det = m00 * m11 - m01 * m01;
  if (!(m00 > 0.0) || !(det > 1e-12 * m00 * m11)) return;
  const double lo = (m11 * b0 - m01 * b1) / det, step = (m00 * b1 - m01 * b0) / det;
  if (!(step >= 0.0) || !std::isfinite(lo) || !std::isfinite(step)) return;
  for (int q = 0; q < k; ++q) lut[q] = lo + step * q;
}

// A LUT row's system restricted to the labels it uses (an unused entry has a zero row and
// column); the row keeps its LUT when the solve fails.
void refine_lut_row(const double* a, const double* rhs, int k, std::span<const uint8_t> labels,
                    std::vector<double>& lut) {
  std::vector<int> count(k, 0), used;
  for (const uint8_t l : labels) ++count[l];
  for (int q = 0; q < k; ++q)
    if (count[q] > 0) used.push_back(q);
  const int m = static_cast<int>(used.size());
  std::vector<double> sa(static_cast<size_t>(m * m)), sb(m);
  for (int x = 0; x < m; ++x) {
    sb[x] = rhs[used[x]];
    for (int z = 0; z < m; ++z) sa[x * m + z] = a[used[x] * k + used[z]];
  }
  if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', m, 1, sa.data(), m, sb.data(), 1) != 0) return;
  for (int x = 0; x < m; ++x) lut[used[x]] = sb[x];
}

}  // namespace

std::vector<float> inverse_alpha(std::span<const float> alpha) {
  std::vector<float> inva(alpha.size());
  for (size_t j = 0; j < alpha.size(); ++j) inva[j] = 1.0f / alpha[j];
  return inva;
}

RefineSystemsFn cpu_refine_systems(const RefineProblem& p) {
  return [p, inva = inverse_alpha(p.alpha), pm = std::vector<float>(), y = std::vector<float>()](
             const RefineBlock& b, std::vector<double>& a, std::vector<double>& rhs) mutable {
    const int64_t first = b.first, count = b.count, cols = p.w.dim(1);
    const int64_t lines = b.line_off[count];
    pm.assign(static_cast<size_t>(lines * cols), 0.0f);
    y.resize(pm.size());
    const bool par = count * cols >= kParallelMinWork;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t r = 0; r < count; ++r) {
      float* pr = pm.data() + b.line_off[r] * cols;
      const uint8_t* li = p.labels.data() + (first + r) * cols;
      for (int64_t j = 0; j < cols; ++j) pr[li[j] * cols + j] = inva[j];
    }
    kernels::gemm(false, false, lines, cols, cols, 1.0f, pm.data(), cols, p.h.data(), cols, 0.0f,
                  y.data(), cols);
    a.assign(static_cast<size_t>(b.a_off[count]), 0.0);
    rhs.assign(static_cast<size_t>(b.rhs_off[count]), 0.0);
#pragma omp parallel for schedule(dynamic, 4) if (par)
    for (int64_t r = 0; r < count; ++r) {
      const int k = p.k[static_cast<size_t>(first + r)];
      const uint8_t* li = p.labels.data() + (first + r) * cols;
      const auto wi = p.w.row(first + r);
      for (int q = 0; q < k; ++q) {
        const float* yq = y.data() + (b.line_off[r] + q) * cols;
        double* aq = a.data() + b.a_off[r] + q * k;
        double s = 0.0;
        for (int64_t j = 0; j < cols; ++j) {
          const double v = static_cast<double>(yq[j]);
          aq[li[j]] += v * inva[j];
          s += v * wi[j];
        }
        rhs[b.rhs_off[r] + q] = s;
      }
    }
  };
}

void refine_luts_full_hessian(const Tensor& w, const Tensor& h, std::span<const uint8_t> labels,
                              std::span<const float> alpha, std::vector<std::vector<double>>& lut,
                              std::span<const uint8_t> grid, const RefineSystemsMaker& systems) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<int> k(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) k[r] = static_cast<int>(lut[r].size());
  const RefineProblem problem{w, h, labels, alpha, k};
  RefineSystemsFn build = systems ? systems(problem) : cpu_refine_systems(problem);
  // Row i's lines of P are stacked into one matrix per block of rows. Blocks are whole row units
  // and each unit's lines are padded (zero lines) to a multiple of kRowUnit, so a row's lines sit
  // at the same place in its GEMM tiles however the rows are split over ranks.
  const auto unit_lines = [&](int64_t u0) {
    int64_t n = 0;
    for (int64_t r = u0; r < std::min(rows, u0 + kRowUnit); ++r) n += k[r];
    return (n + kRowUnit - 1) / kRowUnit * kRowUnit;
  };
  std::vector<int64_t> line_off, a_off, rhs_off;
  std::vector<double> a, rhs;
  int64_t r0 = 0;
  while (r0 < rows) {
    int64_t r1 = r0, lines = 0;  // padded, = line_off[count] below
    while (r1 < rows && (r1 == r0 || (lines + unit_lines(r1)) * cols <= kBlockElements)) {
      lines += unit_lines(r1);
      r1 = std::min(rows, r1 + kRowUnit);
    }
    const int64_t count = r1 - r0;
    line_off.assign(static_cast<size_t>(count + 1), 0);
    a_off.assign(line_off.size(), 0);
    rhs_off.assign(line_off.size(), 0);
    for (int64_t r = 0; r < count; ++r) {
      const int64_t kr = k[r0 + r];
      int64_t next = line_off[r] + kr;
      if ((r + 1) % kRowUnit == 0 || r + 1 == count)
        next = (next + kRowUnit - 1) / kRowUnit * kRowUnit;
      line_off[r + 1] = next;
      a_off[r + 1] = a_off[r] + kr * kr;
      rhs_off[r + 1] = rhs_off[r] + kr;
    }
    build({r0, count, line_off, a_off, rhs_off}, a, rhs);
    if (static_cast<int64_t>(a.size()) != a_off[count] ||
        static_cast<int64_t>(rhs.size()) != rhs_off[count])
      fail(ErrorKind::kInternal,
           "LUT refinement: rows {}..{} got {} / {} system values, not {} / {}", r0, r1, a.size(),
           rhs.size(), a_off[count], rhs_off[count]);
#pragma omp parallel for schedule(dynamic, 4) if (count * cols >= kParallelMinWork)
    for (int64_t row = r0; row < r1; ++row) {
      const double* ai = a.data() + a_off[row - r0];
      const double* bi = rhs.data() + rhs_off[row - r0];
      if (!grid.empty() && grid[row] != 0)
        refine_grid_row(ai, bi, k[row], lut[row]);
      else
        refine_lut_row(ai, bi, k[row], labels.subspan(row * cols, cols), lut[row]);
    }
    r0 = r1;
  }
}

}  // namespace skim::quant
