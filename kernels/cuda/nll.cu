#include <cfloat>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/gpu/model_ops.h"

namespace skim::kernels::gpu {
namespace {

constexpr int kThreads = 256;

// One block per row: the row's max (exact in any order), then sum exp(x - max) in double as the
// twin does, then nll = log(sum) - (x[target] - max).
__global__ void log_softmax_nll_kernel(const float* logits, int64_t vocab, const int32_t* targets,
                                       double* nll) {
  const float* row = logits + blockIdx.x * vocab;
  __shared__ float warp_max[kThreads / 32];
  __shared__ double warp_sum[kThreads / 32];
  __shared__ float row_max;
  float mx = -FLT_MAX;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, row[j]);
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = mx;
  __syncthreads();
  if (threadIdx.x == 0) {
    float m = warp_max[0];
    for (int w = 1; w < kThreads / 32; ++w) m = fmaxf(m, warp_max[w]);
    row_max = m;
  }
  __syncthreads();
  const double m = row_max;
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
    sum += exp(static_cast<double>(row[j]) - m);
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if ((threadIdx.x & 31) == 0) warp_sum[threadIdx.x >> 5] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sum[w];
    const int32_t t = targets[blockIdx.x];
    nll[blockIdx.x] = log(total) - (static_cast<double>(row[t]) - m);
  }
}

}  // namespace

void log_softmax_nll(const float* logits, int64_t rows, int64_t vocab, const int32_t* targets,
                     double* nll, void* stream) {
  if (rows <= 0 || vocab <= 0) return;
  if (rows > 2147483647) throw_invalid_argument("log_softmax_nll", "too many rows for one grid");
  log_softmax_nll_kernel<<<static_cast<unsigned>(rows), kThreads, 0, as_stream(stream)>>>(
      logits, vocab, targets, nll);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
