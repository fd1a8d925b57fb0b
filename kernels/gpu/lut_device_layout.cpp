#include "kernels/gpu/lut_device_layout.h"

#include <array>

#include "src/core/error.h"
#include "src/core/half.h"

namespace skim::kernels::gpu {

int64_t LutDeviceLayout::device_bytes() const {
  int64_t bytes = 2 * static_cast<int64_t>(alpha.size());
  for (const LutDeviceGroup& g : groups)
    bytes += 4 * static_cast<int64_t>(g.words.size()) + 2 * static_cast<int64_t>(g.lut.size()) +
             4 * static_cast<int64_t>(g.row_index.size());
  if (!sparse.empty()) bytes += 8 * static_cast<int64_t>(sparse.row_ptr.size()) + 6 * sparse.nnz();
  return bytes;
}

LutDeviceLayout to_device_layout(const quant::PackedLutLayer& layer, const char* what) {
  const quant::PackedLutOffsets o = quant::packed_lut_offsets(layer.cols, layer.bits);
  if (layer.rows <= 0 || layer.cols <= 0 || layer.bits.size() != static_cast<size_t>(layer.rows) ||
      layer.labels.size() != static_cast<size_t>(o.label.back()) ||
      layer.codebook.size() != static_cast<size_t>(o.codebook.back()) ||
      (!layer.alpha.empty() && layer.alpha.size() != static_cast<size_t>(layer.cols)))
    fail(ErrorKind::kBadInput, "{}: inconsistent packed LUT layer [{}, {}]", what, layer.rows,
         layer.cols);
  std::array<int64_t, kLutMaxBits + 1> count{};
  for (int64_t i = 0; i < layer.rows; ++i) {
    const int b = layer.bits[static_cast<size_t>(i)];
    if (b < 1 || b > kLutMaxBits)
      fail(ErrorKind::kBadInput, "{}: row {} has {} bits; the GPU kernels take 1..{}", what, i, b,
           kLutMaxBits);
    ++count[static_cast<size_t>(b)];
  }

  LutDeviceLayout out;
  out.rows = layer.rows;
  out.cols = layer.cols;
  out.alpha = layer.alpha;
  if (out.alpha.empty()) out.alpha.assign(static_cast<size_t>(layer.cols), float_to_half(1.0f));
  quant::validate(layer.sparse, layer.rows, layer.cols, what);
  out.sparse = layer.sparse;

  std::vector<uint8_t> labels(static_cast<size_t>(layer.cols));
  for (int b = 1; b <= kLutMaxBits; ++b) {
    if (count[static_cast<size_t>(b)] == 0) continue;
    LutDeviceGroup g;
    g.bits = b;
    g.rows = count[static_cast<size_t>(b)];
    g.rows_padded = (g.rows + kLutRowAlign - 1) / kLutRowAlign * kLutRowAlign;
    g.words_per_row = lut_words_per_row(layer.cols, b);
    g.words.assign(static_cast<size_t>(g.rows_padded * g.words_per_row), 0u);
    g.lut.assign(static_cast<size_t>(g.rows_padded << b), 0);
    g.row_index.assign(static_cast<size_t>(g.rows_padded), -1);
    const int per_word = lut_labels_per_word(b);
    int64_t r = 0;
    for (int64_t i = 0; i < layer.rows; ++i) {
      const auto ii = static_cast<size_t>(i);
      if (layer.bits[ii] != b) continue;
      quant::unpack_row(layer.labels.data() + o.label[ii], layer.cols, b, labels.data());
      uint32_t* row_words = g.words.data() + r * g.words_per_row;
      for (int64_t w = 0; w < g.words_per_row; ++w) {
        uint32_t word = 0;
        for (int s = 0; s < per_word; ++s) {
          const int64_t col = lut_column_of(w, s, b);
          if (col < layer.cols) word |= uint32_t{labels[static_cast<size_t>(col)]} << (s * b);
        }
        row_words[w] = word;
      }
      for (int k = 0; k < (1 << b); ++k)
        g.lut[static_cast<size_t>((r << b) + k)] =
            layer.codebook[static_cast<size_t>(o.codebook[ii] + k)];
      g.row_index[static_cast<size_t>(r)] = static_cast<int32_t>(i);
      ++r;
    }
    out.groups.push_back(std::move(g));
  }
  return out;
}

quant::PackedLutLayer from_device_layout(const LutDeviceLayout& layout, bool had_alpha) {
  quant::PackedLutLayer p;
  p.rows = layout.rows;
  p.cols = layout.cols;
  p.bits.assign(static_cast<size_t>(layout.rows), 0);
  if (had_alpha) p.alpha = layout.alpha;
  p.sparse = layout.sparse;
  // Per original row: its group and its position there.
  std::vector<std::pair<int, int64_t>> where(static_cast<size_t>(layout.rows), {-1, -1});
  for (size_t gi = 0; gi < layout.groups.size(); ++gi) {
    const LutDeviceGroup& g = layout.groups[gi];
    for (int64_t r = 0; r < g.rows_padded; ++r) {
      const int32_t i = g.row_index[static_cast<size_t>(r)];
      if (i < 0) continue;
      SKIM_ASSERT(i < layout.rows && where[static_cast<size_t>(i)].first < 0);
      where[static_cast<size_t>(i)] = {static_cast<int>(gi), r};
      p.bits[static_cast<size_t>(i)] = static_cast<uint8_t>(g.bits);
    }
  }
  const quant::PackedLutOffsets o = quant::packed_lut_offsets(p.cols, p.bits);
  p.labels.assign(static_cast<size_t>(o.label.back()), 0);
  p.codebook.assign(static_cast<size_t>(o.codebook.back()), 0);
  std::vector<uint8_t> labels(static_cast<size_t>(p.cols));
  for (int64_t i = 0; i < p.rows; ++i) {
    const auto [gi, r] = where[static_cast<size_t>(i)];
    SKIM_ASSERT(gi >= 0);
    const LutDeviceGroup& g = layout.groups[static_cast<size_t>(gi)];
    const int b = g.bits;
    const uint32_t mask = (1u << b) - 1u;
    const uint32_t* row_words = g.words.data() + r * g.words_per_row;
    for (int64_t w = 0; w < g.words_per_row; ++w)
      for (int s = 0; s < lut_labels_per_word(b); ++s) {
        const int64_t col = lut_column_of(w, s, b);
        if (col < p.cols)
          labels[static_cast<size_t>(col)] = static_cast<uint8_t>((row_words[w] >> (s * b)) & mask);
      }
    quant::pack_row(labels.data(), p.cols, b, p.labels.data() + o.label[static_cast<size_t>(i)]);
    for (int k = 0; k < (1 << b); ++k)
      p.codebook[static_cast<size_t>(o.codebook[static_cast<size_t>(i)] + k)] =
          g.lut[static_cast<size_t>((r << b) + k)];
  }
  return p;
}

}  // namespace skim::kernels::gpu
