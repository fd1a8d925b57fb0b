// LUT entries as stored (twin: quant::store_lut_entries, src/quant/lut_layer.cpp): fp16, or q8 /
// d8 codes on a per-row grid, decoded. One thread per row: k <= 256 entries, a few lookups each.
// Every step mirrors the twin's operations in the same precision, so the stored values agree bit
// for bit.
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/gpu/quant_kernels.h"

namespace skim::kernels::gpu {
namespace {

constexpr int kThreads = 128;

__device__ uint16_t to_half(float x) {
  return __half_as_ushort(__float2half_rn(x));
}
__device__ float from_half(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}

// The fp16 value nearest to x on the side `up` (twin: half_toward in lut_layer.cpp).
__device__ uint16_t half_toward(float x, bool up) {
  const uint16_t h = to_half(x);
  const float v = from_half(h);
  if (up ? v >= x : v <= x) return h;
  if ((h & 0x7fffu) == 0) return up ? 0x0001u : 0x8001u;
  const bool negative = (h & 0x8000u) != 0;
  return static_cast<uint16_t>(up != negative ? h + 1 : h - 1);
}

__device__ uint16_t q8_entry(uint16_t lo, uint16_t step, int c) {
  return to_half(__fadd_rn(from_half(lo), __fmul_rn(from_half(step), static_cast<float>(c))));
}

__device__ int64_t half_scaled(uint16_t h) {
  const int64_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const int64_t v = e == 0 ? m : (1024 + m) << (e - 1);
  return (h & 0x8000u) ? -v : v;
}

__device__ uint16_t d8_entry(uint16_t lo, uint16_t step, int64_t point) {
  const int64_t v = half_scaled(lo) + half_scaled(step) * point;
  return to_half(__double2float_rn(ldexp(static_cast<double>(v), -24)));
}

__device__ void store_q8(float* e, int k) {
  float mn = e[0], mx = e[0];
  for (int q = 0; q < k; ++q) {
    mn = fminf(mn, e[q]);
    mx = fmaxf(mx, e[q]);
  }
  const uint16_t lo = half_toward(mn, false);
  const float span = __fsub_rn(mx, from_half(lo));
  const uint16_t step = span > 0.0f ? half_toward(__fdiv_rn(span, 255.0f), true) : uint16_t{0};
  const float s = from_half(step), l = from_half(lo);
  for (int q = 0; q < k; ++q) {
    const float v = e[q];
    const float g = s > 0.0f ? rintf(__fdiv_rn(__fsub_rn(v, l), s)) : 0.0f;
    const int guess = static_cast<int>(fminf(fmaxf(g, 0.0f), 255.0f));
    int best = guess;
    for (int c = max(guess - 1, 0); c <= min(guess + 1, 255); ++c)
      if (fabsf(__fsub_rn(from_half(q8_entry(lo, step, c)), v)) <
          fabsf(__fsub_rn(from_half(q8_entry(lo, step, best)), v)))
        best = c;
    e[q] = from_half(q8_entry(lo, step, best));
  }
}

// e ascending (the K-means centroids are).
__device__ void store_d8(float* e, int k) {
  float gap = 0.0f;
  for (int q = 1; q < k; ++q) gap = fmaxf(gap, __fsub_rn(e[q], e[q - 1]));
  const uint16_t lo = half_toward(e[0], false);
  const uint16_t step = gap > 0.0f ? half_toward(__fdiv_rn(gap, 254.0f), true) : uint16_t{0};
  const float s = from_half(step), l = from_half(lo);
  int64_t point = 0;
  for (int q = 0; q < k; ++q) {
    const float v = e[q];
    const double guess = s > 0.0f ? rintf(__fdiv_rn(__fsub_rn(v, l), s)) : 0.0;
    const int64_t lo_p = point, hi_p = q == 0 ? 255 : point + 255;
    const auto g = static_cast<int64_t>(
        fmin(fmax(guess, static_cast<double>(lo_p)), static_cast<double>(hi_p)));
    int64_t best = g;
    for (int64_t c = max(g - 1, lo_p); c <= min(g + 1, hi_p); ++c)
      if (fabsf(__fsub_rn(from_half(d8_entry(lo, step, c)), v)) <
          fabsf(__fsub_rn(from_half(d8_entry(lo, step, best)), v)))
        best = c;
    e[q] = from_half(d8_entry(lo, step, best));
    point = best;
  }
}

__global__ void store_entries_kernel(float* centroids, int64_t k_stride, int k, int64_t rows,
                                     LutStorage storage) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= rows) return;
  float* e = centroids + i * k_stride;
  for (int q = 0; q < k; ++q) e[q] = from_half(to_half(e[q]));
  if (storage == LutStorage::kQ8) store_q8(e, k);
  if (storage == LutStorage::kD8) store_d8(e, k);
}

}  // namespace

void store_lut_entries(float* centroids, int64_t k_stride, int k, int64_t rows, LutStorage storage,
                       void* stream) {
  if (k < 1 || k > 256 || k > k_stride)
    throw_invalid_argument("store_lut_entries", "k outside [1, min(256, k_stride)]");
  if (rows <= 0) return;
  const auto blocks = static_cast<unsigned>((rows + kThreads - 1) / kThreads);
  store_entries_kernel<<<blocks, kThreads, 0, as_stream(stream)>>>(centroids, k_stride, k, rows,
                                                                   storage);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
