#include <climits>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/library_handles.cuh"
#include "kernels/gpu/dense_gemm.h"

namespace skim::kernels::gpu {
namespace {

void check_dims(const char* op, int64_t rows, int64_t cols, int64_t tokens) {
  if (rows <= 0 || cols <= 0 || tokens < 0 || rows > INT_MAX || cols > INT_MAX || tokens > INT_MAX)
    throw_invalid_argument(op, "dimensions must be positive and fit cuBLAS ints");
}

// Row-major y[tokens, rows] = x[tokens, cols] W^T is, column-major, y^T = W^T(op T) x^T with
// W seen as a [cols, rows] column-major matrix.
void gemm_ex(const void* w, cudaDataType_t ab, int64_t rows, int64_t cols, const void* x,
             int64_t tokens, void* y, cudaDataType_t c, void* stream) {
  const float one = 1.0f, zero = 0.0f;
  cublasHandle_t handle = cublas_handle(as_stream(stream));
  SKIM_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows),
                                 static_cast<int>(tokens), static_cast<int>(cols), &one, w, ab,
                                 static_cast<int>(cols), x, ab, static_cast<int>(cols), &zero, y, c,
                                 static_cast<int>(rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void dense_gemm(const uint16_t* w, HalfType type, int64_t rows, int64_t cols, const uint16_t* x16,
                int64_t tokens, float* y, void* stream) {
  check_dims("dense_gemm", rows, cols, tokens);
  if (tokens == 0) return;
  gemm_ex(w, type == HalfType::kF16 ? CUDA_R_16F : CUDA_R_16BF, rows, cols, x16, tokens, y,
          CUDA_R_32F, stream);
}

void dense_gemv_fp16(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x16,
                     uint16_t* y16, void* stream) {
  check_dims("dense_gemv_fp16", rows, cols, 1);
  gemm_ex(w, CUDA_R_16F, rows, cols, x16, 1, y16, CUDA_R_16F, stream);
}

}  // namespace skim::kernels::gpu
