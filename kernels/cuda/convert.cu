#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/gpu/model_ops.h"

namespace skim::kernels::gpu {
namespace {

__global__ void to_half_kernel(const float* x, int64_t n, __half* out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = __float2half_rn(x[i]);
}

__global__ void to_bf16_kernel(const float* x, int64_t n, __nv_bfloat16* out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = __float2bfloat16_rn(x[i]);
}

}  // namespace

void to_half(const float* x, int64_t n, uint16_t* out, void* stream) {
  if (n <= 0) return;
  to_half_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, as_stream(stream)>>>(
      x, n, reinterpret_cast<__half*>(out));
  SKIM_CUDA_CHECK_LAUNCH();
}

void to_bf16(const float* x, int64_t n, uint16_t* out, void* stream) {
  if (n <= 0) return;
  to_bf16_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, as_stream(stream)>>>(
      x, n, reinterpret_cast<__nv_bfloat16*>(out));
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
