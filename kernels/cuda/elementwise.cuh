#pragma once
// Launch geometry shared by the element-wise kernels.
#include <cstdint>

namespace skim::kernels::gpu {

inline constexpr int kElementwiseThreads = 256;

// Grid-stride loops cover any n; the grid stops growing at a few waves.
inline unsigned elementwise_blocks(int64_t n) {
  const int64_t blocks = (n + kElementwiseThreads - 1) / kElementwiseThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 ? 65535 : blocks));
}

}  // namespace skim::kernels::gpu
