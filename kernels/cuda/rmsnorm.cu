#include "kernels/cuda/cuda_check.cuh"
#include "kernels/gpu/model_ops.h"

namespace skim::kernels::gpu {
namespace {

constexpr int kThreads = 256;

__global__ void rmsnorm_kernel(const float* x, const float* weight, int64_t dim, float eps,
                               float* y) {
  const float* xr = x + blockIdx.x * dim;
  float* yr = y + blockIdx.x * dim;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) ss += xr[j] * xr[j];
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  __shared__ float warp_sums[kThreads / 32];
  __shared__ float inv;
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
    inv = rsqrtf(total / static_cast<float>(dim) + eps);
  }
  __syncthreads();  // y may alias x: every read of the row is done before any write
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) yr[j] = xr[j] * inv * weight[j];
}

}  // namespace

void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, double eps, float* y,
             void* stream) {
  if (rows <= 0 || dim <= 0) return;
  if (rows > 2147483647) throw_invalid_argument("rmsnorm", "too many rows for one grid");
  rmsnorm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, as_stream(stream)>>>(
      x, weight, dim, static_cast<float>(eps), y);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
