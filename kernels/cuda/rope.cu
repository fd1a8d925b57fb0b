#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/gpu/model_ops.h"

namespace skim::kernels::gpu {
namespace {

// One thread per rotated pair (token, head, i < head_dim / 2).
__global__ void rope_kernel(float* x, int64_t pairs, int64_t seq, int64_t position0, int64_t heads,
                            int64_t head_dim, const float* inv_freq) {
  const int64_t half = head_dim / 2;
  for (int64_t p = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; p < pairs;
       p += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = p % half;
    const int64_t th = p / half;  // token * heads + head
    const int64_t t = th / heads;
    const double angle =
        static_cast<double>(position0 + t % seq) * static_cast<double>(inv_freq[i]);
    double s, c;
    sincos(angle, &s, &c);
    const float cf = static_cast<float>(c), sf = static_cast<float>(s);
    float* xh = x + th * head_dim;
    const float a = xh[i], b = xh[i + half];
    xh[i] = a * cf - b * sf;
    xh[i + half] = b * cf + a * sf;
  }
}

void launch_rope(float* x, int64_t batch, int64_t seq, int64_t position0, int64_t heads,
                 int64_t head_dim, const float* inv_freq, void* stream) {
  if (head_dim <= 0 || head_dim % 2 != 0) throw_invalid_argument("rope_apply", "odd head_dim");
  const int64_t pairs = batch * seq * heads * (head_dim / 2);
  if (pairs <= 0) return;
  rope_kernel<<<elementwise_blocks(pairs), kElementwiseThreads, 0, as_stream(stream)>>>(
      x, pairs, seq, position0, heads, head_dim, inv_freq);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void rope_apply(float* x, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                const float* inv_freq, void* stream) {
  launch_rope(x, batch, seq, 0, heads, head_dim, inv_freq, stream);
}

void rope_apply_at(float* x, int64_t tokens, int64_t position0, int64_t heads, int64_t head_dim,
                   const float* inv_freq, void* stream) {
  launch_rope(x, 1, tokens, position0, heads, head_dim, inv_freq, stream);
}

}  // namespace skim::kernels::gpu
