#pragma once
// Shared helpers of the gpu-labelled tests: random host data, device round trips, and the check
// that a device is present: without one a gpu test fails (a skip would read as a pass in the
// device check, scripts/gpu_check.sh).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/gpu/device_memory.h"

#define SKIM_REQUIRE_GPU()                                                           \
  do {                                                                               \
    if (::skim::kernels::gpu::device_count() == 0) GTEST_FAIL() << "no CUDA device"; \
  } while (0)

namespace skim::testing {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

// max_i |a_i - b_i|
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    m = std::max(m, std::abs(double{a[i]} - double{b[i]}));
  return m;
}

inline double max_abs(const std::vector<float>& a) {
  double m = 0.0;
  for (float x : a) m = std::max(m, std::abs(double{x}));
  return m;
}

}  // namespace skim::testing
