#pragma once
// Round-to-nearest baseline: each row (or each group of `group_size` consecutive columns of a
// row) gets its own asymmetric uniform grid spanning its values, and every weight is rounded to
// the nearest grid point. No calibration data.
#include <cstdint>

#include "src/core/tensor.h"
#include "src/quant/uniform_layer.h"

namespace skim::quant {

struct RtnOptions {
  int bits = 4;            // 2..8
  int64_t group_size = 0;  // 0: one group per row
};

// `w` is [rows, cols]; throws kBadInput for another shape, bad options or non-finite weights.
UniformLayer rtn_quantize(const Tensor& w, const RtnOptions& options);

// The checks of rtn_quantize and the layer it fills: shape, bits and group size set, codes,
// scale and zero sized (what a device twin fills in).
UniformLayer rtn_layer_for(const Tensor& w, const RtnOptions& options);

}  // namespace skim::quant
