#include "kernels/cpu/blas.h"

#include <cblas.h>

#include <algorithm>
#include <climits>

#include "src/core/error.h"

namespace skim::kernels {
namespace {

int blas_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) fail(ErrorKind::kInternal, "BLAS {} = {} out of int range", what, v);
  return static_cast<int>(v);
}

// Output tiles: large enough that a single-threaded call runs at full speed; for a few rows (a
// decode step) narrow, so that the columns spread evenly over the threads. The tile size depends
// only on the shape, never on the thread count.
constexpr int64_t kTileRows = 2 * kRowAlign;
constexpr int64_t kTileCols = 512;
constexpr int64_t kFewRows = 32;
constexpr int64_t kFewRowsTileCols = 64;
constexpr int64_t kGemvTileRows = 512;

// OpenBLAS single-threaded while the tiles run on OpenMP's threads; restored after.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : saved_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
  ~SingleThreadedBlas() { openblas_set_num_threads(saved_); }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_;
};

// Calls tile(i0, j0, rows, cols) for every tile_rows x tile_cols tile of an m x n output.
template <typename Tile>
void for_each_tile(int64_t m, int64_t n, int64_t tile_rows, int64_t tile_cols, const Tile& tile) {
  const int64_t tm = (m + tile_rows - 1) / tile_rows, tn = (n + tile_cols - 1) / tile_cols;
  SingleThreadedBlas single;
#pragma omp parallel for schedule(dynamic)
  for (int64_t t = 0; t < tm * tn; ++t) {
    const int64_t i0 = (t / tn) * tile_rows, j0 = (t % tn) * tile_cols;
    tile(i0, j0, std::min(tile_rows, m - i0), std::min(tile_cols, n - j0));
  }
}

void gemm_call(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
               const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void gemm_call(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda,
               const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <typename T>
void tiled_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const int ik = blas_int(k, "k"), ilda = blas_int(lda, "lda"), ildb = blas_int(ldb, "ldb"),
            ildc = blas_int(ldc, "ldc");
  const int64_t tile_cols = m < kFewRows ? kFewRowsTileCols : kTileCols;
  for_each_tile(m, n, kTileRows, tile_cols,
                [&](int64_t i0, int64_t j0, int64_t rows, int64_t cols) {
                  // Row i0 of op(A) and column j0 of op(B).
                  const T* at = trans_a ? a + i0 : a + i0 * lda;
                  const T* bt = trans_b ? b + j0 * ldb : b + j0;
                  gemm_call(trans_a, trans_b, static_cast<int>(rows), static_cast<int>(cols), ik,
                            alpha, at, ilda, bt, ildb, beta, c + i0 * ldc + j0, ildc);
                });
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  tiled_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc) {
  tiled_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemv(int64_t m, int64_t k, float alpha, const float* a, int64_t lda, const float* x,
          float beta, float* y) {
  if (m == 0) return;
  for_each_tile(m, 1, kGemvTileRows, 1, [&](int64_t i0, int64_t, int64_t rows, int64_t) {
    gemv_serial(false, rows, k, alpha, a + i0 * lda, lda, x, beta, y + i0);
  });
}

void syrk_ata(int64_t n, int64_t k, float alpha, const float* a, int64_t lda, float* c,
              int64_t ldc) {
  if (n == 0 || k == 0) return;
  const int ik = blas_int(k, "k"), ilda = blas_int(lda, "lda"), ildc = blas_int(ldc, "ldc");
  // The upper triangle by square tiles: SSYRK on the diagonal, A_i^T A_j above it.
  for_each_tile(n, n, kTileRows, kTileRows,
                [&](int64_t i0, int64_t j0, int64_t rows, int64_t cols) {
                  if (j0 < i0) return;  // below the diagonal: the mirror of a tile above it
                  if (i0 == j0) {
                    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(rows), ik,
                                alpha, a + i0, ilda, 1.0f, c + i0 * ldc + i0, ildc);
                  } else {
                    gemm_call(true, false, static_cast<int>(rows), static_cast<int>(cols), ik,
                              alpha, a + i0, ilda, a + j0, ilda, 1.0f, c + i0 * ldc + j0, ildc);
                  }
                });
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) c[i * ldc + j] = c[j * ldc + i];
}

void parallel_items(int64_t count, const std::function<void(int64_t)>& item) {
  SingleThreadedBlas single;
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < count; ++i) item(i);
}

void gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc) {
  if (m == 0 || n == 0) return;
  gemm_call(trans_a, trans_b, blas_int(m, "m"), blas_int(n, "n"), blas_int(k, "k"), alpha, a,
            blas_int(lda, "lda"), b, blas_int(ldb, "ldb"), beta, c, blas_int(ldc, "ldc"));
}

void gemv_serial(bool trans, int64_t m, int64_t n, float alpha, const float* a, int64_t lda,
                 const float* x, float beta, float* y) {
  if (m == 0 || n == 0) return;
  cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, blas_int(m, "m"), blas_int(n, "n"),
              alpha, a, blas_int(lda, "lda"), x, 1, beta, y, 1);
}

void set_blas_threads(int threads) {
  openblas_set_num_threads(threads < 1 ? 1 : threads);
}

}  // namespace skim::kernels
