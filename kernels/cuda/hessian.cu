// Hessian accumulation: per batch one SSYRK (fp32, as the CPU twin's syrk_ata) into a scratch
// triangle, then both triangles added into the fp64 running sum, so long calibration runs lose
// nothing to fp32 accumulation across batches.
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/library_handles.cuh"
#include "kernels/gpu/quant_kernels.h"

namespace skim::kernels::gpu {
namespace {

// scratch holds the column-major lower triangle of x^T x (= the row-major upper triangle).
__global__ void add_symmetric(const float* scratch, int64_t cols, double* sum) {
  const int64_t total = cols * cols;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < total;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = t / cols, c = t % cols;
    // Column-major lower (row >= col) entry (a, b) lives at a + b * cols.
    const int64_t a = r >= c ? r : c, b = r >= c ? c : r;
    sum[t] += static_cast<double>(scratch[a + b * cols]);
  }
}

__global__ void scale_to_float(const double* sum, int64_t n, double inv, float* h) {
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n;
       t += int64_t{gridDim.x} * blockDim.x)
    h[t] = static_cast<float>(sum[t] * inv);
}

int grid_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<int>(blocks < 65535 * 16 ? (blocks > 0 ? blocks : 1) : 65535 * 16);
}

}  // namespace

void hessian_accumulate(const float* x, int64_t tokens, int64_t cols, double* sum, float* scratch,
                        void* stream) {
  if (tokens <= 0) return;
  const cudaStream_t s = as_stream(stream);
  // Row-major x [tokens, cols] is column-major x^T [cols, tokens]: C = A A^T with A = x^T.
  const float one = 1.0f, zero = 0.0f;
  SKIM_CUBLAS_CHECK(cublasSsyrk(cublas_handle(s), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                                static_cast<int>(cols), static_cast<int>(tokens), &one, x,
                                static_cast<int>(cols), &zero, scratch, static_cast<int>(cols)));
  add_symmetric<<<grid_for(cols * cols, 256), 256, 0, s>>>(scratch, cols, sum);
  SKIM_CUDA_CHECK_LAUNCH();
}

void hessian_mean(const double* sum, int64_t tokens, int64_t cols, float* h, void* stream) {
  if (tokens <= 0) throw_invalid_argument("hessian_mean", "no calibration token was added");
  scale_to_float<<<grid_for(cols * cols, 256), 256, 0, as_stream(stream)>>>(
      sum, cols * cols, 1.0 / static_cast<double>(tokens), h);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
