#include "kernels/cuda/lut_kernel.cuh"

namespace skim::kernels::gpu {

// 8 rows per warp: each staged input serves 8 rows; 4 segments x 8 rows = 32 loads in flight.
void DeviceLutLayer::gemv(const float* x, float* y, void* stream) const {
  lut::launch</*R=*/8, /*T=*/1, /*U=*/4>(*this, x, 1, y, stream);
  add_sparse(x, 1, y, stream);
}

}  // namespace skim::kernels::gpu
