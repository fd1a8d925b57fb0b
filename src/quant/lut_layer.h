#pragma once
// A linear layer quantized with per-row look-up tables (the skim and kmeans methods): row i has
// bits[i] bits, a codebook of 2^bits[i] fp16 values, one label per weight, and the layer has an
// optional per-column scale alpha (stored fp16). Dequantized: W^[i][j] = codebook_i[label_ij] /
// alpha_j.
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "src/core/half.h"
#include "src/core/tensor.h"
#include "src/quant/sparse_part.h"

namespace skim::quant {

// How LUT entries are stored. kF16: each entry as fp16. kQ8: each entry as one byte c on a
// per-row grid, entry = lut_q8_entry(lo, step, c), with fp16 lo and step per row: half the bits
// per entry plus 32 per row, a 4-bit row at 576 columns 0.28 instead of 0.44 bits per weight.
// kD8: the same bits, but the entries sorted and each byte the increment over the previous
// entry's grid point (lut_d8_entry): the step is the widest gap / 254 instead of the span /
// 255, so wide rows, whose many entries crowd the middle of a heavy-tailed span, keep them apart.
enum class LutEntries { kF16, kQ8, kD8 };

// fp16(lo + step * c), the sum in fp32. step * c is exact in fp32 (11 + 8 significant bits), so
// a fused multiply-add gives the same bits and every reader decodes the same table.
inline uint16_t lut_q8_entry(uint16_t lo, uint16_t step, uint8_t c) {
  return float_to_half(half_to_float(lo) + half_to_float(step) * static_cast<float>(c));
}
// A finite fp16 value times 2^24: an integer (subnormals are multiples of 2^-24), below 2^41.
inline int64_t half_scaled(uint16_t h) {
  const int64_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const int64_t v = e == 0 ? m : (1024 + m) << (e - 1);
  return (h & 0x8000u) ? -v : v;
}

// Entry at grid point `point` (a prefix sum of d8 codes, < 2^16): fp16(fp32(lo + step * point)),
// the sum exact (fp16 values are integer multiples of 2^-24, summed as integers), then rounded to
// fp32 and to fp16, so every reader decodes the same table.
inline uint16_t lut_d8_entry(uint16_t lo, uint16_t step, int64_t point) {
  const int64_t v = half_scaled(lo) + half_scaled(step) * point;
  return float_to_half(static_cast<float>(std::ldexp(static_cast<double>(v), -24)));
}

// A row's k entries decoded from its codes (kQ8: grid points; kD8: increments).
inline void decode_lut_row(LutEntries entries, uint16_t lo, uint16_t step, const uint8_t* codes,
                           int64_t k, uint16_t* out) {
  int64_t point = 0;
  for (int64_t q = 0; q < k; ++q) {
    if (entries == LutEntries::kD8) {
      point += codes[q];
      out[q] = lut_d8_entry(lo, step, point);
    } else {
      out[q] = lut_q8_entry(lo, step, codes[q]);
    }
  }
}

// A grid row's code q: its grid point q (kQ8) or the increment to it (kD8: 0, then 1s).
inline uint8_t grid_row_code(LutEntries entries, int64_t q) {
  return static_cast<uint8_t>(entries == LutEntries::kD8 ? (q == 0 ? 0 : 1) : q);
}

// A row's grid as the format allows it: finite lo, finite step >= 0 (the writer's and the
// reader's check, io/packed_format.cpp, and validate below).
inline bool lut_q8_grid_valid(uint16_t lo, uint16_t step) {
  const float l = half_to_float(lo), s = half_to_float(step);
  return std::isfinite(l) && std::isfinite(s) && s >= 0.0f;
}

struct LutLayer {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> bits;             // [rows], 1..8
  std::vector<int64_t> codebook_offset;  // [rows + 1], row i's LUT is codebook[off[i], off[i+1])
  std::vector<uint16_t> codebook;        // fp16 values
  std::vector<uint8_t> labels;           // [rows * cols], one byte per weight before packing
  std::vector<uint16_t> alpha;           // [cols] fp16; empty when the layer has no scale
  // kQ8 storage (both empty for kF16): one byte per codebook entry, and per row fp16 (lo, step);
  // `codebook` then holds the decoded entries, lut_q8_entry(lo_i, step_i, q8[k]).
  std::vector<uint8_t> codebook_q8;        // [codebook.size()]
  std::vector<uint16_t> codebook_q8_grid;  // [rows * 2]: lo_i, step_i
  bool d8 = false;                         // the codes are increments (LutEntries::kD8)
  // kQ8 only: grid_rows[i] = 1 when row i is a grid row, its LUT the first 2^b points of its
  // grid (codes 0, 1, 2, ... implied, not stored); empty when the layer has none.
  std::vector<uint8_t> grid_rows;
  // Reserved weights (sparse_part.h): corrections added to the LUT part; empty when none.
  SparsePart sparse;
};

// A row's form as the allocator chooses it, in one byte: its width (bits 0-3), its level of
// reserved weights (bits 4-6: 0 none, l the l-th count of reserve_menu, sparse_part.h), plus
// kGridRow for a grid row.
inline constexpr uint8_t kGridRow = 0x80;
inline constexpr int kReserveShift = 4;
inline constexpr int kMaxReserveLevel = 7;
inline int choice_width(uint8_t choice) {
  return choice & 0x0f;
}
inline int choice_reserve_level(uint8_t choice) {
  return (choice >> kReserveShift) & kMaxReserveLevel;
}
inline uint8_t make_choice(int width, bool grid, int reserve_level) {
  return static_cast<uint8_t>(width | (reserve_level << kReserveShift) | (grid ? kGridRow : 0));
}
inline bool choice_is_grid(uint8_t choice) {
  return (choice & kGridRow) != 0;
}
inline bool is_grid_row(const LutLayer& layer, int64_t i) {
  return !layer.grid_rows.empty() && layer.grid_rows[static_cast<size_t>(i)] != 0;
}

// Stored bits of one row, all overhead counted: cols*b (indices) + its LUT (kF16: 16*2^b;
// kQ8: 8*2^b + 32 for lo and step; a grid row (kQ8 only): 32) + 8 (its bit-width, which also
// carries the grid flag); per layer 16*cols for alpha when present. The bit budget uses these.
inline int64_t lut_row_cost_bits(int64_t cols, int bits, LutEntries entries, bool grid = false) {
  const int64_t k = int64_t{1} << bits;
  const int64_t lut = entries == LutEntries::kF16 ? 16 * k : grid ? 32 : 8 * k + 32;
  return cols * bits + lut + 8;
}
inline LutEntries lut_entries(const LutLayer& layer) {
  return layer.codebook_q8.empty() ? LutEntries::kF16
         : layer.d8                ? LutEntries::kD8
                                   : LutEntries::kQ8;
}
inline int64_t lut_layer_overhead_bits(int64_t cols, bool has_alpha) {
  return has_alpha ? 16 * cols : 0;
}

// Checks sizes, bit widths, labels below each row's LUT size, finite positive alpha and, for kQ8,
// that the codebook is the decoded grid; throws kBadInput naming `what` on the first violation.
// (lut_layer.cpp)
void validate(const LutLayer& layer, const char* what);

// Stores the layer's fp16 entries on 8-bit grids: per row lo = its least entry and step = the
// span / 255 (both rounded to fp16 outward), each entry moved to its nearest grid value. The
// labels stay; every entry moves by at most about step / 2. A grid row (entries already evenly
// spaced, from scaled_kmeans) keeps lo = its first entry and step = the spacing in fp16, codes
// 0, 1, 2, ...
void encode_codebook_q8(LutLayer& layer);

// The same bits as encode_codebook_q8, stored as d8 (LutEntries::kD8): each row's entries sorted
// (its labels renumbered to match), lo = the least entry rounded down, step = the widest gap
// between neighbours / 254 rounded up, each entry at the nearest grid point no lower than the
// previous entry's and at most 255 above it. A grid row gets increments 0, 1, 1, ...
void encode_codebook_d8(LutLayer& layer);

// One row's 8-bit storage: the fp16 entries replaced by their stored values, one code each
// (q8: the grid point; d8: the increment over the previous entry's point, entries ascending).
struct LutRowGrid {
  uint16_t lo = 0;
  uint16_t step = 0;
};
LutRowGrid encode_q8_entries(std::span<uint16_t> entries, uint8_t* codes);
LutRowGrid encode_d8_entries(std::span<uint16_t> ascending, uint8_t* codes);

// fp32 LUT entries (any order) replaced by what a reader decodes once they are stored as
// `entries`: fp16, then (kQ8, kD8) the 8-bit code decoded. What the error tables measure.
void store_lut_entries(LutEntries entries, std::span<float> lut);

// The dense fp32 matrix W^ [rows, cols], W^[i][j] = codebook_i[label_ij] / alpha_j, plus the
// sparse part's corrections.
Tensor dequantize(const LutLayer& layer);

// The sparse part's values from the final LUT part (after encode_codebook_q8): at each reserved
// position fp16(w_ij - LUT part_ij). w is the layer's original weight.
void set_sparse_corrections(LutLayer& layer, const Tensor& w);

}  // namespace skim::quant
