#pragma once
// Synthetic layers generated on the device (no host transfer of 70B-sized matrices), and the
// device name for the result file. CUDA-free header.
#include <cstdint>
#include <string>

namespace skim::bench {

// x[t] = scale * (heavy-tailed or normal) pseudo-random value from a counter hash of (seed, t).
void device_random(float* x, int64_t n, uint64_t seed, float scale, bool heavy_tailed);
// d[j] = h[j * n + j].
void device_diagonal(const float* h, int64_t n, float* d);
void device_synchronize();
std::string device_name();

}  // namespace skim::bench
