#pragma once
// A synthetic layer's Hessian as the quantizers take it: fp32, damped (src/quant/hessian.h).
#include "src/core/tensor.h"
#include "src/quant/hessian.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant::testing {

inline Tensor damped_hessian(const SyntheticLayer& L) {
  Tensor h({L.cols, L.cols});
  for (size_t k = 0; k < L.h.size(); ++k) h.data()[k] = static_cast<float>(L.h[k]);
  damp_hessian(h);
  return h;
}

}  // namespace skim::quant::testing
