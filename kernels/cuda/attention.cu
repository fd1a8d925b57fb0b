#include <math_constants.h>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/gpu/model_ops.h"

namespace skim::kernels::gpu {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxHeadDim = 256;
constexpr int kDimsPerLane = kMaxHeadDim / 32;

// One warp per query row. Keys go in chunks of 32, one key per lane for the score; then every
// lane adds p_s v_s for its own output dims (d = lane + 32 i), so v is read coalesced. The softmax
// is online: the running max m rescales the partial sums when it grows. Sequence b holds q_len
// queries at positions past .. past + q_len - 1 and past + q_len keys; query i attends keys
// 0 .. past + i (past = 0: the plain causal attention; past > 0: new tokens against a cache).
__global__ void attention_kernel(const float* q, const float* k, const float* v, int64_t queries,
                                 int64_t q_len, int64_t past, int64_t heads, int64_t group,
                                 int head_dim, float scale, float* out) {
  __shared__ __align__(16) float q_s[kWarps][kMaxHeadDim];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t query = blockIdx.x * int64_t{kWarps} + warp;  // (b, t, h) with h fastest
  if (query >= queries) return;                               // no block-wide sync below
  const int64_t h = query % heads;
  const int64_t token = query / heads;  // b * q_len + i
  const int64_t b = token / q_len;
  const int64_t t = past + token % q_len;    // the query's position: its last key
  const int64_t first = b * (past + q_len);  // key row of key 0 of this sequence
  const int64_t kv_width = heads / group * head_dim;
  const float* qh = q + token * heads * head_dim + h * head_dim;
  const float* kg = k + first * kv_width + (h / group) * head_dim;
  const float* vg = v + first * kv_width + (h / group) * head_dim;
  for (int d = lane; d < head_dim; d += 32) q_s[warp][d] = qh[d];
  __syncwarp();

  float o[kDimsPerLane];
#pragma unroll
  for (int i = 0; i < kDimsPerLane; ++i) o[i] = 0.0f;
  float m = -CUDART_INF_F, l = 0.0f;
  for (int64_t s0 = 0; s0 <= t; s0 += 32) {
    const int64_t s = s0 + lane;
    float score = -CUDART_INF_F;
    if (s <= t) {
      const float4* kr = reinterpret_cast<const float4*>(kg + s * kv_width);
      const float4* qr = reinterpret_cast<const float4*>(q_s[warp]);
      float dot = 0.0f;
      for (int d4 = 0; d4 < head_dim / 4; ++d4) {
        const float4 a = qr[d4], b = kr[d4];
        dot += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
      }
      score = dot * scale;
    }
    float chunk_max = score;
    for (int off = 16; off > 0; off >>= 1)
      chunk_max = fmaxf(chunk_max, __shfl_xor_sync(0xffffffffu, chunk_max, off));
    const float m_new = fmaxf(m, chunk_max);  // finite: key s0 <= t is always valid
    const float corr = expf(m - m_new);       // 0 on the first chunk (m = -inf)
    const float p = s <= t ? expf(score - m_new) : 0.0f;
    l = l * corr + p;
#pragma unroll
    for (int i = 0; i < kDimsPerLane; ++i) o[i] *= corr;
    const int valid = static_cast<int>(t - s0 + 1 < 32 ? t - s0 + 1 : 32);
    for (int j = 0; j < valid; ++j) {
      const float pj = __shfl_sync(0xffffffffu, p, j);
      const float* vr = vg + (s0 + j) * kv_width;
#pragma unroll
      for (int i = 0; i < kDimsPerLane; ++i) {
        const int d = lane + 32 * i;
        if (d < head_dim) o[i] += pj * vr[d];
      }
    }
    m = m_new;
  }
  for (int off = 16; off > 0; off >>= 1) l += __shfl_xor_sync(0xffffffffu, l, off);
  const float inv = 1.0f / l;
  float* oh = out + token * heads * head_dim + h * head_dim;
#pragma unroll
  for (int i = 0; i < kDimsPerLane; ++i) {
    const int d = lane + 32 * i;
    if (d < head_dim) oh[d] = o[i] * inv;
  }
}

void launch_attention(const float* q, const float* k, const float* v, int64_t batch, int64_t q_len,
                      int64_t past, int64_t heads, int64_t kv_heads, int64_t head_dim, float* out,
                      void* stream) {
  if (kv_heads <= 0 || heads % kv_heads != 0)
    throw_invalid_argument("causal_attention", "heads must be a multiple of kv_heads");
  if (head_dim <= 0 || head_dim > kMaxHeadDim || head_dim % 4 != 0)
    throw_invalid_argument("causal_attention", "head_dim must be a multiple of 4 up to 256");
  if (past < 0) throw_invalid_argument("cached_attention", "negative cache length");
  const int64_t queries = batch * q_len * heads;
  if (queries <= 0) return;
  const int64_t blocks = (queries + kWarps - 1) / kWarps;
  if (blocks > 2147483647) throw_invalid_argument("causal_attention", "too many queries");
  const float scale = static_cast<float>(1.0 / sqrt(static_cast<double>(head_dim)));
  attention_kernel<<<static_cast<unsigned>(blocks), kWarps * 32, 0, as_stream(stream)>>>(
      q, k, v, queries, q_len, past, heads, heads / kv_heads, static_cast<int>(head_dim), scale,
      out);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void causal_attention(const float* q, const float* k, const float* v, int64_t batch, int64_t seq,
                      int64_t heads, int64_t kv_heads, int64_t head_dim, float* out, void* stream) {
  launch_attention(q, k, v, batch, seq, 0, heads, kv_heads, head_dim, out, stream);
}

void cached_attention(const float* q, const float* k_cache, const float* v_cache, int64_t tokens,
                      int64_t past, int64_t heads, int64_t kv_heads, int64_t head_dim, float* out,
                      void* stream) {
  launch_attention(q, k_cache, v_cache, 1, tokens, past, heads, kv_heads, head_dim, out, stream);
}

}  // namespace skim::kernels::gpu
