#pragma once
// The GPU layout of a packed LUT layer (docs/FORMAT.md, "GPU layout"), built on the host.
//
// Rows are grouped by bit-width (1..8), one group per width present, rows in their original order
// within a group. In a group of width b every row holds P = floor(32 / b) labels per
// little-endian 32-bit word (b = 3: 10 labels, the top 2 bits zero; b = 5, 6: 6 and 5 labels;
// b = 7: 4 labels, the top 4 bits zero) and its words are read by a warp in segments of 32
// consecutive words (128 bytes). Word w of a row holds, in its slot s (bits [s b, s b + b)), the
// label of column
//     (w / 32) * 32 P + s * 32 + (w % 32),
// so lane l of a warp reads word l of a segment (one coalesced 128-byte load) and, for each slot,
// the 32 lanes need 32 consecutive inputs (conflict-free shared-memory reads). Rows are padded to
// a whole number of segments (columns beyond `cols` have label 0 and multiply a zero input) and
// each group's row count to a multiple of kLutRowAlign (padding rows: zero words, zero LUT,
// row_index -1), so kernels need no bounds checks inside a row tile.
#include <cstdint>
#include <vector>

#include "kernels/gpu/lut_geometry.h"
#include "src/quant/packed_layer.h"

namespace skim::kernels::gpu {

// All rows of one bit-width.
struct LutDeviceGroup {
  int bits = 0;
  int64_t rows = 0;         // real rows of this width
  int64_t rows_padded = 0;  // rows rounded up to kLutRowAlign
  int64_t words_per_row = 0;
  std::vector<uint32_t> words;     // [rows_padded, words_per_row]
  std::vector<uint16_t> lut;       // [rows_padded, 2^bits] fp16; zero for padding rows
  std::vector<int32_t> row_index;  // [rows_padded] original row, -1 for padding rows
};

struct LutDeviceLayout {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint16_t> alpha;         // [cols] fp16; all 1.0 when the layer has no scale
  std::vector<LutDeviceGroup> groups;  // ascending bit-width, empty widths left out
  quant::SparsePart sparse;            // the packed layer's, as it is (CSR), or empty

  int64_t device_bytes()
      const;  // what the kernels read for one product (words, LUTs, indices, alpha, sparse)
};

// Throws kBadInput, naming `what`, for a layer with a row wider than kLutMaxBits or an
// inconsistent packed layer.
LutDeviceLayout to_device_layout(const quant::PackedLutLayer& layer, const char* what = "layer");
// The inverse: the packed layer the device layout was built from (alpha of all ones comes back
// empty only if the source had none, which the layout cannot tell: `had_alpha` says).
quant::PackedLutLayer from_device_layout(const LutDeviceLayout& layout, bool had_alpha);

}  // namespace skim::kernels::gpu
