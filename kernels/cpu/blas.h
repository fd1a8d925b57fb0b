#pragma once
// Row-major wrappers over CBLAS, so callers never spell out CBLAS enums or int casts.
//
// Results do not depend on the thread count: the output is cut into tiles of a fixed size, each
// one single-threaded BLAS call, and OpenMP spreads the tiles over the threads. (OpenBLAS's own
// threading moves a row or column between its main and edge kernels, which round differently on
// some processors, e.g. its SkylakeX kernels; the pipeline promises the same bytes for any thread
// and rank count.) Never call these from inside an OpenMP parallel region.
#include <cstdint>
#include <functional>

namespace skim::kernels {

// A row of a GEMM's output is rounded the same in every call that puts it at the same place
// modulo this many rows: OpenBLAS's SGEMM kernels work on panels of 16 (SkylakeX), 24 (Haswell,
// Zen) or 32 rows, and a row's bits depend on its place in the panel. Callers that must give
// the same bits for a row whichever rows share its call (row-parallel quantization) start their
// calls at multiples of it; the wrappers' own row tiles are multiples of it.
inline constexpr int64_t kRowAlign = 96;

// C[m x n] = alpha * op(A) * op(B) + beta * C, row-major; op(A) is m x k, op(B) is k x n.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// Same in double precision.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc);

// y[m] = alpha * A[m x k] x + beta * y, row-major: one token through a linear layer. A GEMM with
// one row would copy (pack) all of A first; this reads A once. Fixed tiles of rows, as above.
void gemv(int64_t m, int64_t k, float alpha, const float* a, int64_t lda, const float* x,
          float beta, float* y);

// C[n x n] += alpha * A^T A for A[k x n] row-major; fills both triangles.
void syrk_ata(int64_t n, int64_t k, float alpha, const float* a, int64_t lda, float* c,
              int64_t ldc);

// Many small products at once: item(i) for i in [0, count) on OpenMP's threads (dynamic
// schedule), with BLAS single-threaded inside, so an item may call gemm_serial. An item's
// result depends on the item alone, never on the thread count.
void parallel_items(int64_t count, const std::function<void(int64_t)>& item);

// One single-threaded GEMM (row-major, as gemm): only inside parallel_items.
void gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc);

// y = alpha * op(A) x + beta * y for A [m x n] row-major (op(A) = A^T when trans) as one
// single-threaded BLAS call: only inside parallel_items.
void gemv_serial(bool trans, int64_t m, int64_t n, float alpha, const float* a, int64_t lda,
                 const float* x, float beta, float* y);

// Sets the threads of BLAS calls made outside these wrappers (LAPACK); the wrappers use OpenMP's.
void set_blas_threads(int threads);

}  // namespace skim::kernels
