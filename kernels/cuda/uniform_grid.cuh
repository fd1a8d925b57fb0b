#pragma once
// The uniform grid of rtn and gptq on the device (twin: quant::uniform_params, uniform_code,
// uniform_value in src/quant/uniform_layer.h), the same operations in the same precision.
#include <cuda_fp16.h>

#include <cstdint>

namespace skim::kernels::gpu {

struct MinOp {
  __device__ float operator()(float a, float b) const { return fminf(a, b); }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

struct UniformGrid {
  float scale, zero;
  uint16_t scale_h, zero_h;
};

// The twin's uniform_params: range widened to 0, fp16 scale rounded up, integer zero point.
__device__ inline UniformGrid uniform_params_device(float min_value, float max_value, int bits) {
  float lo = fminf(min_value, 0.0f), hi = fmaxf(max_value, 0.0f);
  if (lo == 0.0f && hi == 0.0f) {
    lo = -1.0f;
    hi = 1.0f;
  }
  const float maxq = static_cast<float>((1 << bits) - 1);
  const float s = (hi - lo) / maxq;
  UniformGrid p;
  p.scale_h = __half_as_ushort(__float2half_rn(s));
  if (__half2float(__ushort_as_half(p.scale_h)) < s) ++p.scale_h;
  p.scale = __half2float(__ushort_as_half(p.scale_h));
  p.zero = fminf(fmaxf(rintf(-lo / p.scale), 0.0f), maxq);
  p.zero_h = __half_as_ushort(__float2half_rn(p.zero));
  return p;
}

__device__ inline uint8_t code_of(float w, const UniformGrid& p, int bits) {
  const float maxq = static_cast<float>((1 << bits) - 1);
  float q = rintf(w / p.scale) + p.zero;
  q = q < 0.0f ? 0.0f : (q > maxq ? maxq : q);
  return static_cast<uint8_t>(q);
}

__device__ inline float value_of(uint8_t q, const UniformGrid& p) {
  return p.scale * (static_cast<float>(q) - p.zero);
}

}  // namespace skim::kernels::gpu
