#pragma once
// Test data for ordered_sum: group partials of widely varying magnitude and sign, so that the
// order of additions shows in the bits. Every rank can regenerate any group from its index.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace skim::comm::testing {

template <typename T>
std::vector<T> group_partial(int64_t group, int64_t count) {
  std::mt19937_64 rng(0x5EED0000 + static_cast<uint64_t>(group));
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  std::uniform_real_distribution<double> exponent(-4.0, 4.0);
  std::vector<T> p(count);
  for (auto& v : p) v = static_cast<T>(unit(rng) * std::pow(10.0, exponent(rng)));
  return p;
}

// ((0 + p_0) + p_1) + ... + p_{G-1}, the order ordered_sum promises.
template <typename T>
std::vector<T> serial_sum(int64_t groups, int64_t count) {
  std::vector<T> sum(count, T(0));
  for (int64_t g = 0; g < groups; ++g) {
    const std::vector<T> p = group_partial<T>(g, count);
    for (int64_t i = 0; i < count; ++i) sum[i] += p[i];
  }
  return sum;
}

}  // namespace skim::comm::testing
