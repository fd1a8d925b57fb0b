#pragma once
// QDEC's correction of one token: y_i += s_i * sum_{j in S} x_j * (c_ij - 8) over the selected
// input channels S of a 4-bit residual stored by input channel (src/quant/residual.h): channel
// j's codes are one contiguous run of ceil(rows / 2) bytes, row 2k in the low nibble of byte k,
// the high nibble of a last odd row 0. The sum runs over S in the order given, in fp32, one
// accumulator per row, so the CUDA twin (kernels/gpu/qdec.h) adds in the same order.
#include <cstdint>

namespace skim::kernels {

inline int64_t qdec_column_bytes(int64_t rows) {
  return (rows + 1) / 2;
}

// codes [cols][qdec_column_bytes(rows)], scale [rows] (fp32), x [cols], channels [k] (each in
// [0, cols)), y [rows]; acc [rows] is scratch.
void qdec_correct(const uint8_t* codes, const float* scale, int64_t rows, const float* x,
                  const int32_t* channels, int64_t k, float* acc, float* y);

// The k channels of largest |x_j| among cols, in ascending channel order (equal magnitudes: the
// lower channel first; NaN never chosen before a number). k <= cols.
void top_k_channels(const float* x, int64_t cols, int64_t k, int32_t* channels);

}  // namespace skim::kernels
