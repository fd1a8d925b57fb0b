#pragma once
// QDEC (dynamic error compensation at inference): the residual R = W - W^ of a quantized linear,
// kept beside the model at 4 bits, added back at each token for the input channels of largest
// magnitude: y += R[:, S] x_S.
//
// Storage, laid out so that one input channel's residual is one contiguous run: symmetric 4-bit
// codes with one fp16 scale per output channel (row), R^_ij = scale_i * (code_ij - 8), codes in
// 0..15; channel j's codes are bytes [j * ceil(rows / 2), (j + 1) * ceil(rows / 2)), row 2k in
// the low nibble of byte k (a last odd row's high nibble is 0). A row's scale is the best of
// kResidualClipFactors * max_j |r_ij| / 7 by squared error (round(r / s) clamped to -8..7).
#include <cstdint>
#include <vector>

#include "src/core/tensor.h"

namespace skim::quant {

inline constexpr double kResidualClipFactors[] = {0.60, 0.65, 0.70, 0.75, 0.80,
                                                  0.85, 0.90, 0.95, 1.00};

struct ResidualLayer {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint16_t> scale;  // [rows] fp16, >= 0
  std::vector<uint8_t> codes;   // [cols * ceil(rows / 2)]

  int64_t column_bytes() const { return (rows + 1) / 2; }
};

// r [rows, cols] (finite, within the fp16 range); throws kBadInput otherwise.
ResidualLayer quantize_residual(const Tensor& r);

// The dense fp32 R^ [rows, cols].
Tensor dequantize(const ResidualLayer& r);

// 4 bits per weight and 16 per row.
inline int64_t stored_bits(const ResidualLayer& r) {
  return 4 * r.rows * r.cols + 16 * r.rows;
}

// A residual ready to correct products: its scales in fp32 once, not per call.
class ResidualCorrector {
 public:
  explicit ResidualCorrector(ResidualLayer residual);
  const ResidualLayer& residual() const { return residual_; }
  // The per-row scales as fp32 (what the correction multiplies by).
  const std::vector<float>& scale() const { return scale_; }

  // y [tokens, rows] += R^[:, S_t] x_t[S_t] for x [tokens, cols], S_t the k channels of token t
  // with the largest |x_tj| (kernels/cpu/qdec.h). 0 <= k <= cols.
  void apply(const float* x, int64_t tokens, int64_t k, float* y) const;

 private:
  ResidualLayer residual_;
  std::vector<float> scale_;
};

}  // namespace skim::quant
