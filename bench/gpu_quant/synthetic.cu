#include <cmath>

#include "bench/gpu_quant/synthetic.h"
#include "kernels/cuda/cuda_check.cuh"

namespace skim::bench {
namespace {

__device__ inline uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

__device__ inline float uniform01(uint64_t bits) {
  return (static_cast<float>(bits >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

__global__ void random_kernel(float* x, int64_t n, uint64_t seed, float scale, bool heavy) {
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n;
       t += int64_t{gridDim.x} * blockDim.x) {
    const uint64_t a = mix(seed ^ mix(static_cast<uint64_t>(t)));
    const float u1 = uniform01(a), u2 = uniform01(mix(a));
    float z = sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);  // Box-Muller
    if (heavy) z /= sqrtf(0.25f + uniform01(mix(a + 1)));   // a heavier tail
    x[t] = scale * z;
  }
}

__global__ void diagonal_kernel(const float* h, int64_t n, float* d) {
  const int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (j < n) d[j] = h[j * n + j];
}

}  // namespace

void device_diagonal(const float* h, int64_t n, float* d) {
  diagonal_kernel<<<static_cast<unsigned>((n + 255) / 256), 256>>>(h, n, d);
  SKIM_CUDA_CHECK_LAUNCH();
}

void device_random(float* x, int64_t n, uint64_t seed, float scale, bool heavy_tailed) {
  random_kernel<<<1024, 256>>>(x, n, seed, scale, heavy_tailed);
  SKIM_CUDA_CHECK_LAUNCH();
}

void device_synchronize() {
  SKIM_CUDA_CHECK(cudaDeviceSynchronize());
}

std::string device_name() {
  int device = 0;
  SKIM_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  SKIM_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return prop.name;
}

}  // namespace skim::bench
