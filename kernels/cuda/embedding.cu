// Token embedding: one block per token copies its row of the table (fp32, the CPU's values).
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/gpu/model_ops.h"

namespace skim::kernels::gpu {
namespace {

constexpr int kThreads = 256;

__global__ void gather_rows(const float* table, const int32_t* tokens, int64_t hidden, float* out) {
  const int64_t t = blockIdx.x;
  const float* row = table + static_cast<int64_t>(tokens[t]) * hidden;
  for (int64_t j = threadIdx.x; j < hidden; j += kThreads) out[t * hidden + j] = row[j];
}

}  // namespace

void embed_tokens(const float* table, const int32_t* tokens, int64_t count, int64_t hidden,
                  float* out, void* stream) {
  if (count <= 0) return;
  gather_rows<<<static_cast<unsigned>(count), kThreads, 0, as_stream(stream)>>>(table, tokens,
                                                                                hidden, out);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
