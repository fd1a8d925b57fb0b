#pragma once
// A linear layer quantized with per-row look-up tables (the skim and kmeans methods): row i has
// bits[i] bits, a codebook of 2^bits[i] fp16 values, one label per weight, and the layer has an
// optional per-column scale alpha (stored fp16). Dequantized: W^[i][j] = codebook_i[label_ij] /
// alpha_j.
#include <cstdint>
#include <vector>

#include "src/core/tensor.h"

namespace skim::quant {

struct LutLayer {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> bits;             // [rows], 1..8
  std::vector<int64_t> codebook_offset;  // [rows + 1], row i's LUT is codebook[off[i], off[i+1])
  std::vector<uint16_t> codebook;        // fp16 values
  std::vector<uint8_t> labels;           // [rows * cols], one byte per weight before packing
  std::vector<uint16_t> alpha;           // [cols] fp16; empty when the layer has no scale
};

// Stored bits of the layer, all overhead counted: per row cols*b (indices) + 16*2^b (fp16 LUT)
// + 8 (its bit-width); per layer 16*cols for alpha when present. The bit budget uses these.
inline int64_t lut_row_cost_bits(int64_t cols, int bits) {
  return cols * bits + 16 * (int64_t{1} << bits) + 8;
}
inline int64_t lut_layer_overhead_bits(int64_t cols, bool has_alpha) {
  return has_alpha ? 16 * cols : 0;
}

// Checks sizes, bit widths, labels below each row's LUT size and finite positive alpha; throws
// kBadInput naming `what` on the first violation. (lut_layer.cpp)
void validate(const LutLayer& layer, const char* what);

// The dense fp32 matrix W^ [rows, cols], W^[i][j] = codebook_i[label_ij] / alpha_j.
Tensor dequantize(const LutLayer& layer);

}  // namespace skim::quant
