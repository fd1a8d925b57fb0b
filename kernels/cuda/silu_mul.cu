#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/gpu/model_ops.h"

namespace skim::kernels::gpu {
namespace {

__global__ void silu_mul_kernel(float* gate, const float* up, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void add_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] += x[i];
}

__global__ void add_bias_kernel(float* y, const float* bias, int64_t n, int64_t cols) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] += bias[i % cols];
}

}  // namespace

void silu_mul(float* gate, const float* up, int64_t n, void* stream) {
  if (n <= 0) return;
  silu_mul_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, as_stream(stream)>>>(gate, up,
                                                                                        n);
  SKIM_CUDA_CHECK_LAUNCH();
}

void add_inplace(float* y, const float* x, int64_t n, void* stream) {
  if (n <= 0) return;
  add_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, as_stream(stream)>>>(y, x, n);
  SKIM_CUDA_CHECK_LAUNCH();
}

void add_bias(float* y, const float* bias, int64_t rows, int64_t cols, void* stream) {
  const int64_t n = rows * cols;
  if (n <= 0) return;
  add_bias_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, as_stream(stream)>>>(y, bias, n,
                                                                                        cols);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
