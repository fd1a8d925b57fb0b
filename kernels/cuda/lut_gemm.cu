#include "kernels/cuda/lut_kernel.cuh"

namespace skim::kernels::gpu {

// 8 tokens per block tile, 4 rows per warp: each decoded weight serves 8 tokens.
void DeviceLutLayer::gemm(const float* x, int64_t batch, float* y, void* stream) const {
  if (batch == 1) {
    gemv(x, y, stream);
    return;
  }
  lut::launch</*R=*/4, /*T=*/8, /*U=*/2>(*this, x, batch, y, stream);
  add_sparse(x, batch, y, stream);
}

}  // namespace skim::kernels::gpu
