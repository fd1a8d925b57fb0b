// Partials gathered from every rank summed in rank order, one thread per element: the order of
// comm::ordered_sum with one group per rank, so every rank gets the same bits.
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/gpu/quant_kernels.h"

namespace skim::kernels::gpu {
namespace {

constexpr int kThreads = 256;

__global__ void sum_parts(const double* parts, int ranks, int64_t width, double* out) {
  const int64_t e = blockIdx.x * int64_t{kThreads} + threadIdx.x;
  if (e >= width) return;
  double s = 0.0;
  for (int r = 0; r < ranks; ++r) s = __dadd_rn(s, parts[r * width + e]);
  out[e] = s;
}

}  // namespace

void sum_in_rank_order(const double* parts, int ranks, int64_t width, double* out, void* stream) {
  if (width <= 0) return;
  const auto blocks = static_cast<unsigned>((width + kThreads - 1) / kThreads);
  sum_parts<<<blocks, kThreads, 0, as_stream(stream)>>>(parts, ranks, width, out);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
