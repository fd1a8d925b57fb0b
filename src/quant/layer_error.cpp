#include "src/quant/layer_error.h"

#include <algorithm>

#include "kernels/cpu/blas.h"
#include "src/core/error.h"

namespace skim::quant {
namespace {

// Below this much work a parallel region costs more than it saves: idle OpenBLAS and OpenMP
// threads spin, and on few cores they steal each other's time.
constexpr int64_t kParallelMinWork = int64_t{1} << 20;

constexpr int64_t kRowBlock = 2 * kernels::kRowAlign;  // calls start at row multiples of it

template <typename T>
void quadratic_forms(const T* d, int64_t rows, int64_t cols, const T* h, double* out) {
  std::vector<T> y(static_cast<size_t>(std::min(rows, kRowBlock) * cols));
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    const int64_t nr = std::min(kRowBlock, rows - r0);
    kernels::gemm(false, false, nr, cols, cols, T{1}, d + r0 * cols, cols, h, cols, T{0}, y.data(),
                  cols);
#pragma omp parallel for schedule(static) if (nr * cols >= kParallelMinWork)
    for (int64_t i = 0; i < nr; ++i) {
      const T* yi = y.data() + i * cols;
      const T* di = d + (r0 + i) * cols;
      double s = 0.0;
      for (int64_t j = 0; j < cols; ++j) s += static_cast<double>(yi[j]) * di[j];
      out[r0 + i] = s;
    }
  }
}

void check_shapes(const Tensor& w, const Tensor& w_hat, const Tensor& h) {
  if (w.ndim() != 2 || w_hat.shape() != w.shape() || h.ndim() != 2 || h.dim(0) != w.dim(1) ||
      h.dim(1) != w.dim(1))
    fail(ErrorKind::kInternal, "layer_error: W {} W^ {} H {} do not match", w.shape_string(),
         w_hat.shape_string(), h.shape_string());
}

}  // namespace

void row_quadratic_forms(const float* d, int64_t rows, int64_t cols, const float* h, double* out) {
  quadratic_forms(d, rows, cols, h, out);
}

void row_quadratic_forms(const double* d, int64_t rows, int64_t cols, const double* h,
                         double* out) {
  quadratic_forms(d, rows, cols, h, out);
}

std::vector<double> row_errors(const Tensor& w, const Tensor& w_hat, const Tensor& h) {
  check_shapes(w, w_hat, h);
  std::vector<float> d(static_cast<size_t>(w.numel()));
  for (size_t k = 0; k < d.size(); ++k) d[k] = w_hat.data()[k] - w.data()[k];
  std::vector<double> out(static_cast<size_t>(w.dim(0)));
  row_quadratic_forms(d.data(), w.dim(0), w.dim(1), h.data(), out.data());
  return out;
}

double layer_error(const Tensor& w, const Tensor& w_hat, const Tensor& h) {
  double s = 0.0;
  for (const double e : row_errors(w, w_hat, h)) s += e;
  return s;
}

std::vector<double> row_energies(const Tensor& w, const Tensor& h) {
  check_shapes(w, w, h);
  std::vector<double> out(static_cast<size_t>(w.dim(0)));
  row_quadratic_forms(w.data(), w.dim(0), w.dim(1), h.data(), out.data());
  return out;
}

double output_energy(const Tensor& w, const Tensor& h) {
  double s = 0.0;
  for (const double e : row_energies(w, h)) s += e;
  return s;
}

}  // namespace skim::quant
