#pragma once
// The constants and index rules of the GPU LUT layout (kernels/gpu/lut_device_layout.h), free of
// other includes so CUDA sources (C++17) can use them.
#include <cstdint>

namespace skim::kernels::gpu {

inline constexpr int kLutMaxBits = 8;
// Rows up to this width stage their LUTs in shared memory; wider ones (2^b entries, up to 512
// bytes a row) are looked up through the L1 cache.
inline constexpr int kLutStagedMaxBits = 4;
inline constexpr int64_t kLutRowAlign = 8;
inline constexpr int64_t kLutSegmentWords = 32;

inline int lut_labels_per_word(int bits) {
  return 32 / bits;
}
// Columns covered by one 32-word segment of a row of width `bits`.
inline int64_t lut_segment_cols(int bits) {
  return kLutSegmentWords * lut_labels_per_word(bits);
}
inline int64_t lut_padded_cols(int64_t cols, int bits) {
  const int64_t seg = lut_segment_cols(bits);
  return (cols + seg - 1) / seg * seg;
}
inline int64_t lut_words_per_row(int64_t cols, int bits) {
  return lut_padded_cols(cols, bits) / lut_labels_per_word(bits);
}
// The column whose label sits in slot `slot` of word `word` of a row of width `bits`.
inline int64_t lut_column_of(int64_t word, int slot, int bits) {
  return word / kLutSegmentWords * lut_segment_cols(bits) + int64_t{slot} * kLutSegmentWords +
         word % kLutSegmentWords;
}

}  // namespace skim::kernels::gpu
