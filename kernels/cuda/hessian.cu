// Hessian accumulation: per batch one SSYRK (fp32, as the CPU twin's syrk_ata) into a scratch
// triangle, then both triangles added into the fp64 running sum, so long calibration runs lose
// nothing to fp32 accumulation across batches. The fixed-point variant (quantize's Hessians,
// pipeline/exact_hessian.h) adds each sample's SSYRK rounded to an int64 grid instead, so sums
// over ranks are exact integers.
#include <cmath>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/library_handles.cuh"
#include "kernels/gpu/quant_kernels.h"

namespace skim::kernels::gpu {
namespace {

// scratch holds the column-major lower triangle of x^T x (= the row-major upper triangle): the
// entry (a, b), a >= b, lives at a + b * cols. Row-major entry t of the full matrix reads it.
__device__ inline int64_t lower_index(int64_t t, int64_t cols) {
  const int64_t r = t / cols, c = t % cols;
  return r >= c ? r + c * cols : c + r * cols;
}

__global__ void add_symmetric(const float* scratch, int64_t cols, double* sum) {
  const int64_t total = cols * cols;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < total;
       t += int64_t{gridDim.x} * blockDim.x)
    sum[t] += static_cast<double>(scratch[lower_index(t, cols)]);
}

__global__ void scale_to_float(const double* sum, int64_t n, double inv, float* h) {
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n;
       t += int64_t{gridDim.x} * blockDim.x)
    h[t] = static_cast<float>(sum[t] * inv);
}

__global__ void add_fixed_point(const float* scratch, int64_t cols, double quanta, int64_t* sum) {
  const int64_t total = cols * cols;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < total;
       t += int64_t{gridDim.x} * blockDim.x)
    sum[t] += __double2ll_rn(static_cast<double>(scratch[lower_index(t, cols)]) * quanta);
}

__global__ void fixed_point_mean(const int64_t* sum, int64_t n, int exponent, double inv,
                                 float* h) {
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n;
       t += int64_t{gridDim.x} * blockDim.x)
    h[t] = static_cast<float>(ldexp(static_cast<double>(sum[t]), exponent) * inv);
}

// One thread per column, the tokens in order (the twin's order per column).
__global__ void column_energies_kernel(const float* x, int64_t seq, int64_t cols, double* energy) {
  for (int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; j < cols;
       j += int64_t{gridDim.x} * blockDim.x) {
    double e = 0.0;
    for (int64_t t = 0; t < seq; ++t) {
      const double v = x[t * cols + j];
      e += v * v;
    }
    energy[j] = e;
  }
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

void column_energies(const float* x, int64_t seq, int64_t cols, double* energy, void* stream) {
  column_energies_kernel<<<grid_for(cols, 128), 128, 0, as_stream(stream)>>>(x, seq, cols, energy);
  SKIM_CUDA_CHECK_LAUNCH();
}

void exact_hessian_add(const float* x, int64_t seq, int64_t cols, int exponent, int64_t* sum,
                       float* scratch, void* stream) {
  if (seq <= 0) return;
  const cudaStream_t s = as_stream(stream);
  const float one = 1.0f, zero = 0.0f;
  SKIM_CUBLAS_CHECK(cublasSsyrk(cublas_handle(s), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                                static_cast<int>(cols), static_cast<int>(seq), &one, x,
                                static_cast<int>(cols), &zero, scratch, static_cast<int>(cols)));
  add_fixed_point<<<grid_for(cols * cols, 256), 256, 0, s>>>(scratch, cols,
                                                             std::ldexp(1.0, -exponent), sum);
  SKIM_CUDA_CHECK_LAUNCH();
}

void exact_hessian_mean(const int64_t* sum, int exponent, int64_t tokens, int64_t cols, float* h,
                        void* stream) {
  if (tokens <= 0) throw_invalid_argument("exact_hessian_mean", "no calibration token was added");
  fixed_point_mean<<<grid_for(cols * cols, 256), 256, 0, as_stream(stream)>>>(
      sum, cols * cols, exponent, 1.0 / static_cast<double>(tokens), h);
  SKIM_CUDA_CHECK_LAUNCH();
}

void hessian_mean(const double* sum, int64_t tokens, int64_t cols, float* h, void* stream) {
  if (tokens <= 0) throw_invalid_argument("hessian_mean", "no calibration token was added");
  scale_to_float<<<grid_for(cols * cols, 256), 256, 0, as_stream(stream)>>>(
      sum, cols * cols, 1.0 / static_cast<double>(tokens), h);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
