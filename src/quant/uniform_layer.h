#pragma once
// A linear layer quantized with an asymmetric uniform grid (the rtn and gptq methods): every
// weight has a `bits`-bit integer code q, and its group's fp16 scale s and zero point z (an
// integer stored as fp16) give W^[i][j] = s * (q - z). Groups are runs of `group_size` columns
// in quantization order (the act-order permutation when there is one); group_size 0 means one
// group per row. Codes are stored in the original column order, so the permutation only decides
// which group a column belongs to.
//
// Mixed precision per column group: `group_bits` gives each column group its own width (the same
// for every row); then groups are consecutive runs of a multiple of 8 columns (no permutation), so
// every group's codes start on a byte boundary of the packed row.
#include <cmath>
#include <cstdint>
#include <vector>

#include "src/core/tensor.h"

namespace skim::quant {

struct UniformLayer {
  int64_t rows = 0;
  int64_t cols = 0;
  int bits = 4;                     // 1..8; with group_bits, the nominal (average) width
  int64_t group_size = 0;           // 0: per row
  std::vector<uint16_t> scale;      // [rows * groups()] fp16, > 0
  std::vector<uint16_t> zero;       // [rows * groups()] fp16, integer in [0, 2^bits - 1]
  std::vector<uint8_t> codes;       // [rows * cols], original column order
  std::vector<int32_t> perm;        // empty, or [cols]: perm[k] = column quantized k-th
  std::vector<uint8_t> group_bits;  // empty, or [groups()]: each group's width, 1..8

  int64_t groups() const { return group_size <= 0 ? 1 : (cols + group_size - 1) / group_size; }
  int group_width(int64_t g) const {
    return group_bits.empty() ? bits : group_bits[static_cast<size_t>(g)];
  }
};

// Group of every column: group_of[j] = (position of j in quantization order) / group_size.
std::vector<int32_t> column_groups(const UniformLayer& layer);

// Checks sizes and value ranges; throws kBadInput naming `what` on the first violation.
void validate(const UniformLayer& layer, const char* what);

// The dense fp32 matrix W^ [rows, cols].
Tensor dequantize(const UniformLayer& layer);

// Stored bits, all overhead counted: codes rows*cols*bits (each group at its width), scale and
// zero 16 bits each per (row, group), the permutation 32 bits per column when present, 8 bits per
// group width when present.
int64_t stored_bits(const UniformLayer& layer);

// Per-group asymmetric quantizer parameters of the reference GPTQ code: the range is widened to
// include 0 (an all-zero group gets [-1, 1]), scale = (max - min) / (2^bits - 1) rounded UP to
// fp16 so the grid still spans the range, zero = round(-min / scale). Every value of the range
// is then within scale / 2 of the grid.
struct UniformParams {
  uint16_t scale_h = 0;  // fp16
  uint16_t zero_h = 0;   // fp16
  float scale = 0.0f;    // the same values as floats
  float zero = 0.0f;
};
UniformParams uniform_params(float min_value, float max_value, int bits);

// Code of one value: clamp(round(w / scale) + zero, 0, 2^bits - 1).
inline uint8_t uniform_code(float w, const UniformParams& p, int bits) {
  const float maxq = static_cast<float>((1 << bits) - 1);
  float q = std::nearbyint(w / p.scale) + p.zero;
  q = q < 0.0f ? 0.0f : (q > maxq ? maxq : q);
  return static_cast<uint8_t>(q);
}
inline float uniform_value(uint8_t code, const UniformParams& p) {
  return p.scale * (static_cast<float>(code) - p.zero);
}

}  // namespace skim::quant
