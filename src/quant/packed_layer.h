#pragma once
// Quantized layers in their stored form, and the products computed straight from it.
//
// Bit order (one rule for every width 1..8): each row is packed on its own and starts on a byte
// boundary. Value j of a row with b bits occupies bits [j*b, j*b + b) of the row's bit stream,
// least significant bit first, and stream bit t is bit (t % 8) of byte t / 8. So a row is one
// little-endian integer holding value j at bit offset j*b; widths 3, 5, 6, 7 straddle bytes, and a
// kernel may read the row as little-endian 32- or 64-bit words. The unused high bits of a row's
// last byte are zero. A row takes packed_row_bytes(cols, b) = ceil(cols * b / 8) bytes.
//
// The structs carry no layout beyond what they store; the offsets are derived (layout helpers
// below), so io/ can read, check and count a packed layer with this header alone
// (no link dependency of io on quant).
#include <cstdint>
#include <vector>

#include "src/quant/lut_layer.h"
#include "src/quant/uniform_layer.h"

namespace skim::quant {

inline int64_t packed_row_bytes(int64_t cols, int bits) {
  return (cols * bits + 7) / 8;
}

// Packs `cols` values (each < 2^bits) into packed_row_bytes(cols, bits) bytes, and back.
void pack_row(const uint8_t* values, int64_t cols, int bits, uint8_t* out);
void unpack_row(const uint8_t* packed, int64_t cols, int bits, uint8_t* out);

// A LUT layer as stored. Row i: bits[i] bits, LUT codebook[codebook_offset(i) ...] of
// 2^bits[i] fp16 values, labels at byte label_offset(i) of `labels`. With 8-bit entries
// (LutEntries::kQ8) the codes and grids are what is stored and `codebook` is decoded from them.
struct PackedLutLayer {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> bits;               // [rows], 1..8
  std::vector<uint16_t> codebook;          // [sum_i 2^bits[i]] fp16, rows in order
  std::vector<uint8_t> labels;             // [sum_i packed_row_bytes(cols, bits[i])], rows in order
  std::vector<uint16_t> alpha;             // [cols] fp16, or empty (no scale)
  std::vector<uint8_t> codebook_q8;        // kQ8: [codebook.size()] codes, else empty
  std::vector<uint16_t> codebook_q8_grid;  // kQ8: [rows * 2] fp16 lo, step; else empty
  std::vector<uint8_t> grid_rows;          // kQ8: [rows] 1 = grid row (codes not stored), or empty
  bool d8 = false;                         // the codes are increments (LutEntries::kD8)
  SparsePart sparse;                       // reserved weights' corrections, or empty
};

// The 8-bit codes a file stores: those of the rows that are not grid rows.
inline int64_t stored_q8_codes(const PackedLutLayer& layer) {
  int64_t n = static_cast<int64_t>(layer.codebook_q8.size());
  for (size_t i = 0; i < layer.grid_rows.size(); ++i)
    if (layer.grid_rows[i] != 0) n -= int64_t{1} << layer.bits[i];
  return n;
}

// Prefix sums of the rows' label bytes and LUT sizes: [rows + 1] each.
struct PackedLutOffsets {
  std::vector<int64_t> label;
  std::vector<int64_t> codebook;
};
inline PackedLutOffsets packed_lut_offsets(int64_t cols, const std::vector<uint8_t>& bits) {
  PackedLutOffsets o;
  o.label.assign(bits.size() + 1, 0);
  o.codebook.assign(bits.size() + 1, 0);
  for (size_t i = 0; i < bits.size(); ++i) {
    o.label[i + 1] = o.label[i] + packed_row_bytes(cols, bits[i]);
    o.codebook[i + 1] = o.codebook[i] + (int64_t{1} << bits[i]);
  }
  return o;
}

// A uniform (rtn / gptq) layer as stored: the UniformLayer with its codes packed per row,
// every row packed_row_bytes(cols, bits) bytes. With group widths a row is its groups'
// codes one after the other (slim writes them), group g packed at its own width in
// packed_row_bytes(its columns, width) bytes (whole bytes: groups are a multiple of 8 columns, the
// last may be shorter).
struct PackedUniformLayer {
  int64_t rows = 0;
  int64_t cols = 0;
  int bits = 4;
  int64_t group_size = 0;
  std::vector<uint16_t> scale;      // [rows * groups] fp16
  std::vector<uint16_t> zero;       // [rows * groups] fp16
  std::vector<int32_t> perm;        // empty or [cols]
  std::vector<uint8_t> group_bits;  // empty or [groups]
  std::vector<uint8_t> codes;       // [rows * uniform_row_bytes(*this)]

  int64_t groups() const {
    return group_size <= 0 || group_size >= cols ? 1 : (cols + group_size - 1) / group_size;
  }
  int group_width(int64_t g) const {
    return group_bits.empty() ? bits : group_bits[static_cast<size_t>(g)];
  }
};

// Byte offset of each group's codes within a packed row: [groups + 1], the last the row's size.
// Without group widths the groups share one stream: one entry pair {0, packed_row_bytes}.
inline std::vector<int64_t> uniform_group_offsets(int64_t cols, int bits, int64_t group_size,
                                                  const std::vector<uint8_t>& group_bits) {
  if (group_bits.empty()) return {0, packed_row_bytes(cols, bits)};
  std::vector<int64_t> o(group_bits.size() + 1, 0);
  for (size_t g = 0; g < group_bits.size(); ++g) {
    const int64_t j0 = static_cast<int64_t>(g) * group_size;
    const int64_t width = (cols < j0 + group_size ? cols : j0 + group_size) - j0;
    o[g + 1] = o[g] + packed_row_bytes(width > 0 ? width : 0, group_bits[g]);
  }
  return o;
}
// Group widths are usable: one per group, each 1..8, groups of a multiple of 8 columns, no
// permutation. The one rule for the quantizer's and the file's checks.
inline bool uniform_group_bits_valid(int64_t groups, int64_t group_size, bool has_perm,
                                     const std::vector<uint8_t>& group_bits) {
  if (group_bits.empty()) return true;
  if (static_cast<int64_t>(group_bits.size()) != groups || group_size <= 0 || group_size % 8 != 0 ||
      has_perm)
    return false;
  for (uint8_t b : group_bits)
    if (b < 1 || b > 8) return false;
  return true;
}
inline int64_t uniform_row_bytes(const PackedUniformLayer& l) {
  return uniform_group_offsets(l.cols, l.bits, l.group_size, l.group_bits).back();
}

// A CLAQ layer (src/quant/claq.h): a LUT per input column. W^[i][j] = codebook[o_j + code_ij]
// plus the sparse part (reserved weights as fp16 corrections, as in a LUT layer), column j's code
// of bits[j] bits and its 2^bits[j] fp16 entries at o_j = sum_{j' < j} 2^bits[j']. A packed row
// is one little-endian stream of its codes in column order, code j at bit sum_{j' < j} bits[j'],
// in whole bytes (the unused high bits of the last byte zero).
struct PackedColumnLutLayer {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> bits;       // [cols] 1..8
  std::vector<uint16_t> codebook;  // [sum_j 2^bits[j]] fp16
  std::vector<uint8_t> codes;      // [rows * row_bytes]
  SparsePart sparse;
};

struct ColumnLutOffsets {
  std::vector<int64_t> bit;       // [cols + 1]: code j's first bit in the row
  std::vector<int64_t> codebook;  // [cols + 1]: column j's first entry
  int64_t row_bytes = 0;
};
inline ColumnLutOffsets column_lut_offsets(const std::vector<uint8_t>& bits) {
  ColumnLutOffsets o;
  o.bit.assign(bits.size() + 1, 0);
  o.codebook.assign(bits.size() + 1, 0);
  for (size_t j = 0; j < bits.size(); ++j) {
    o.bit[j + 1] = o.bit[j] + bits[j];
    o.codebook[j + 1] = o.codebook[j] + (int64_t{1} << bits[j]);
  }
  o.row_bytes = (o.bit.back() + 7) / 8;
  return o;
}

// Codes [rows * cols] (each below 2^bits[j]) packed row by row, and back.
std::vector<uint8_t> pack_column_codes(const std::vector<uint8_t>& codes, int64_t rows,
                                       const std::vector<uint8_t>& bits);
std::vector<uint8_t> unpack_column_codes(const PackedColumnLutLayer& layer);

// The dense fp32 W^ [rows, cols], sparse part included.
Tensor dequantize(const PackedColumnLutLayer& layer);

// Code bytes * 8 + 16 per LUT entry + 8 per column (its width) + the sparse part.
inline int64_t stored_bits(const PackedColumnLutLayer& layer) {
  return 8 * static_cast<int64_t>(layer.codes.size()) +
         16 * static_cast<int64_t>(layer.codebook.size()) + 8 * layer.cols +
         stored_bits(layer.sparse, layer.rows, layer.cols);
}

PackedLutLayer pack(const LutLayer& layer);  // validates first (kBadInput)
LutLayer unpack(const PackedLutLayer& layer);
PackedUniformLayer pack(const UniformLayer& layer);  // validates first (kBadInput)
UniformLayer unpack(const PackedUniformLayer& layer);

// Stored bits, all overhead counted. LUT: label bytes * 8 + 16 per fp16 LUT entry (or 8 per
// stored 8-bit entry, none for a grid row, + 32 per row for its grid) + 8 per row (its width) + 16
// per alpha entry + the sparse part (sparse_part.h) (equals the sum of lut_row_cost_bits when cols
// * bits is a multiple of 8). Uniform: code bytes * 8 + 32 per (row, group) + 32 per permutation
// entry + 8 per group width.
inline int64_t stored_bits(const PackedLutLayer& layer) {
  const int64_t entries =
      layer.codebook_q8.empty()
          ? 16 * static_cast<int64_t>(layer.codebook.size())
          : 8 * stored_q8_codes(layer) + 16 * static_cast<int64_t>(layer.codebook_q8_grid.size());
  return 8 * static_cast<int64_t>(layer.labels.size()) + entries + 8 * layer.rows +
         16 * static_cast<int64_t>(layer.alpha.size()) +
         stored_bits(layer.sparse, layer.rows, layer.cols);
}
inline int64_t stored_bits(const PackedUniformLayer& layer) {
  return 8 * static_cast<int64_t>(layer.codes.size()) + 32 * layer.rows * layer.groups() +
         32 * static_cast<int64_t>(layer.perm.size()) +
         8 * static_cast<int64_t>(layer.group_bits.size());
}

// y[rows] = W^ x[cols], computed from the packed form: x is divided by alpha once, then each row
// looks its labels up in its own LUT; the sparse part is added last. OpenMP over rows.
void gemv(const PackedLutLayer& layer, const float* x, float* y);
// Y[batch, rows] = X[batch, cols] W^T. W^ is decoded one tile of rows at a time (at most 4 MiB
// of fp32) and multiplied by one sgemm per tile: never a dense copy of the whole W^. Results do
// not depend on the thread count.
void gemm(const PackedLutLayer& layer, const float* x, int64_t batch, float* y);

// The same products for a packed uniform layer (w = s * (q - z) per group; gemm tiled as above).
void gemv(const PackedUniformLayer& layer, const float* x, float* y);
void gemm(const PackedUniformLayer& layer, const float* x, int64_t batch, float* y);

// And for a column-LUT layer: gemv looks each code up in a table of entry * x_j built once per
// call; gemm decodes tiles as above; the sparse part is added last.
void gemv(const PackedColumnLutLayer& layer, const float* x, float* y);
void gemm(const PackedColumnLutLayer& layer, const float* x, int64_t batch, float* y);

}  // namespace skim::quant
