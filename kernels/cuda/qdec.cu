// QDEC's residual correction (kernels/gpu/qdec.h): one thread per (token, row). Neighbouring
// rows share a code byte and a warp reads 16 contiguous bytes of each channel, so the reads of
// a channel's run coalesce, which matters most when the codes are mapped host memory.
// Twin: kernels::qdec_correct.
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/gpu/qdec.h"

namespace skim::kernels::gpu {
namespace {

__global__ void qdec_correct_kernel(const uint8_t* __restrict__ codes,
                                    const float* __restrict__ scale, int64_t rows, int64_t cols,
                                    const float* __restrict__ x,
                                    const int32_t* __restrict__ channels, int64_t k, int64_t tokens,
                                    float* __restrict__ y) {
  const int64_t stride = (rows + 1) / 2;
  const int64_t n = rows * tokens;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = t / rows, i = t % rows;
    const float* xb = x + b * cols;
    const int32_t* cb = channels + b * k;
    const int shift = static_cast<int>(i & 1) * 4;
    float acc = 0.0f;
    for (int64_t s = 0; s < k; ++s) {
      const int64_t j = cb[s];
      const int code = (codes[j * stride + i / 2] >> shift) & 15;
      acc += xb[j] * static_cast<float>(code - 8);
    }
    y[t] += scale[i] * acc;
  }
}

}  // namespace

void qdec_correct(const uint8_t* codes, const float* scale, int64_t rows, int64_t cols,
                  const float* x, const int32_t* channels, int64_t k, int64_t tokens, float* y,
                  void* stream) {
  if (rows < 0 || cols < 0 || tokens < 0) throw_invalid_argument("qdec_correct", "negative size");
  if (k < 0 || k > cols) throw_invalid_argument("qdec_correct", "k outside [0, cols]");
  if (rows == 0 || tokens == 0) return;
  // k == 0 still launches: y += scale * 0 is what the twin does (NaN for an infinite scale).
  const int64_t n = rows * tokens;
  qdec_correct_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, as_stream(stream)>>>(
      codes, scale, rows, cols, x, channels, k, tokens, y);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
