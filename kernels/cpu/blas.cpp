#include "kernels/cpu/blas.h"

#include <cblas.h>

#include <climits>

#include "src/core/error.h"

namespace skim::kernels {
namespace {

int blas_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) fail(ErrorKind::kInternal, "BLAS {} = {} out of int range", what, v);
  return static_cast<int>(v);
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, blas_int(m, "m"), blas_int(n, "n"),
              blas_int(k, "k"), alpha, a, blas_int(lda, "lda"), b, blas_int(ldb, "ldb"), beta, c,
              blas_int(ldc, "ldc"));
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, blas_int(m, "m"), blas_int(n, "n"),
              blas_int(k, "k"), alpha, a, blas_int(lda, "lda"), b, blas_int(ldb, "ldb"), beta, c,
              blas_int(ldc, "ldc"));
}

void syrk_ata(int64_t n, int64_t k, float alpha, const float* a, int64_t lda, float* c,
              int64_t ldc) {
  if (n == 0 || k == 0) return;
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, blas_int(n, "n"), blas_int(k, "k"), alpha, a,
              blas_int(lda, "lda"), 1.0f, c, blas_int(ldc, "ldc"));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) c[i * ldc + j] = c[j * ldc + i];
}

void set_blas_threads(int threads) {
  openblas_set_num_threads(threads < 1 ? 1 : threads);
}

}  // namespace skim::kernels
