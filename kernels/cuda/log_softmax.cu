// The losses built on a row's log-softmax: NLL of a target, the log-probabilities themselves, and
// the KL divergence to reference log-probabilities. One block per row; the row's max (exact in any
// order) and its sum of exponentials in double, as the CPU twins in kernels/cpu/model_ops.cpp.
#include <cfloat>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/gpu/model_ops.h"

namespace skim::kernels::gpu {
namespace {

constexpr int kThreads = 256;

// Block-wide sum of one double per thread; every thread gets the total.
__device__ double block_sum(double v) {
  __shared__ double warp_sum[kThreads / 32];
  __shared__ double total;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) warp_sum[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int w = 0; w < kThreads / 32; ++w) t += warp_sum[w];
    total = t;
  }
  __syncthreads();
  const double out = total;
  __syncthreads();  // warp_sum and total may be reused by the next call
  return out;
}

// The row's max m and log sum_j exp(x_j - m), both in double; every thread gets them.
__device__ void max_and_lse(const float* row, int64_t vocab, double* m_out, double* lse_out) {
  __shared__ float warp_max[kThreads / 32];
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
  *m_out = m;
  *lse_out = log(block_sum(sum));
}

__global__ void nll_kernel(const float* logits, int64_t vocab, const int32_t* targets,
                           double* nll) {
  const float* row = logits + blockIdx.x * vocab;
  double m, lse;
  max_and_lse(row, vocab, &m, &lse);
  if (threadIdx.x == 0) nll[blockIdx.x] = lse - (static_cast<double>(row[targets[blockIdx.x]]) - m);
}

__global__ void log_softmax_kernel(const float* logits, int64_t vocab, float* log_p) {
  const float* row = logits + blockIdx.x * vocab;
  float* out = log_p + blockIdx.x * vocab;
  double m, lse;
  max_and_lse(row, vocab, &m, &lse);
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
    out[j] = static_cast<float>(static_cast<double>(row[j]) - m - lse);
}

__global__ void kl_kernel(const float* log_p, const float* logits_q, int64_t vocab, double* kl) {
  const float* lp = log_p + blockIdx.x * vocab;
  const float* row = logits_q + blockIdx.x * vocab;
  double m, lse;
  max_and_lse(row, vocab, &m, &lse);
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    const double log_q = static_cast<double>(row[j]) - m - lse;
    sum += exp(static_cast<double>(lp[j])) * (static_cast<double>(lp[j]) - log_q);
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) kl[blockIdx.x] = sum;
}

unsigned row_grid(const char* op, int64_t rows) {
  if (rows > 2147483647) throw_invalid_argument(op, "too many rows for one grid");
  return static_cast<unsigned>(rows);
}

}  // namespace

void log_softmax_nll(const float* logits, int64_t rows, int64_t vocab, const int32_t* targets,
                     double* nll, void* stream) {
  if (rows <= 0 || vocab <= 0) return;
  nll_kernel<<<row_grid("log_softmax_nll", rows), kThreads, 0, as_stream(stream)>>>(logits, vocab,
                                                                                    targets, nll);
  SKIM_CUDA_CHECK_LAUNCH();
}

void log_softmax(const float* logits, int64_t rows, int64_t vocab, float* log_p, void* stream) {
  if (rows <= 0 || vocab <= 0) return;
  log_softmax_kernel<<<row_grid("log_softmax", rows), kThreads, 0, as_stream(stream)>>>(
      logits, vocab, log_p);
  SKIM_CUDA_CHECK_LAUNCH();
}

void kl_divergence(const float* log_p, const float* logits_q, int64_t rows, int64_t vocab,
                   double* kl, void* stream) {
  if (rows <= 0 || vocab <= 0) return;
  kl_kernel<<<row_grid("kl_divergence", rows), kThreads, 0, as_stream(stream)>>>(log_p, logits_q,
                                                                                 vocab, kl);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
