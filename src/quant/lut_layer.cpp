#include "src/quant/lut_layer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "src/core/error.h"
#include "src/core/half.h"

namespace skim::quant {

namespace {

// The fp16 value nearest to x on the side `up` (x itself when representable). x is finite and
// within fp16's range, so one ulp past the nearest value is always enough.
uint16_t half_toward(float x, bool up) {
  const uint16_t h = float_to_half(x);
  const float v = half_to_float(h);
  if (up ? v >= x : v <= x) return h;
  if ((h & 0x7fffu) == 0) return up ? 0x0001u : 0x8001u;
  const bool negative = (h & 0x8000u) != 0;
  return static_cast<uint16_t>(up != negative ? h + 1 : h - 1);
}

void validate_q8(const LutLayer& layer, const char* what) {
  if (layer.codebook_q8.size() != layer.codebook.size() ||
      layer.codebook_q8_grid.size() != 2 * static_cast<size_t>(layer.rows))
    fail(ErrorKind::kBadInput,
         "{}: {} 8-bit LUT entries and {} grid values for {} entries, {} rows", what,
         layer.codebook_q8.size(), layer.codebook_q8_grid.size(), layer.codebook.size(),
         layer.rows);
  for (int64_t i = 0; i < layer.rows; ++i) {
    const uint16_t lo = layer.codebook_q8_grid[2 * i], step = layer.codebook_q8_grid[2 * i + 1];
    if (!lut_q8_grid_valid(lo, step))
      fail(ErrorKind::kBadInput, "{}: row {}: LUT grid lo {} step {} is not finite and ascending",
           what, i, half_to_float(lo), half_to_float(step));
    const int64_t first = layer.codebook_offset[i], n = layer.codebook_offset[i + 1] - first;
    if (is_grid_row(layer, i))
      for (int64_t q = 0; q < n; ++q)
        if (layer.codebook_q8[first + q] != grid_row_code(lut_entries(layer), q))
          fail(ErrorKind::kBadInput, "{}: grid row {}: code {} is {}", what, i, q,
               layer.codebook_q8[first + q]);
    std::vector<uint16_t> decoded(static_cast<size_t>(n));
    decode_lut_row(lut_entries(layer), lo, step, layer.codebook_q8.data() + first, n,
                   decoded.data());
    for (int64_t q = 0; q < n; ++q)
      if (layer.codebook[first + q] != decoded[q])
        fail(ErrorKind::kBadInput, "{}: row {}: LUT entry {} is not its 8-bit code decoded", what,
             i, q);
  }
}

// A grid row's lo and step: its first entry and the least-squares spacing of its entries, fp16.
void encode_grid_row(LutLayer& layer, int64_t i) {
  const int64_t first = layer.codebook_offset[i], k = layer.codebook_offset[i + 1] - first;
  const float lo = half_to_float(layer.codebook[first]);
  double num = 0.0, den = 0.0;
  for (int64_t q = 1; q < k; ++q) {
    num += static_cast<double>(q) * (half_to_float(layer.codebook[first + q]) - lo);
    den += static_cast<double>(q) * q;
  }
  const uint16_t step =
      float_to_half(static_cast<float>(den > 0.0 ? std::max(num / den, 0.0) : 0.0));
  const uint16_t lo_h = layer.codebook[first];
  for (int64_t q = 0; q < k; ++q)
    layer.codebook_q8[first + q] = grid_row_code(lut_entries(layer), q);
  decode_lut_row(lut_entries(layer), lo_h, step, layer.codebook_q8.data() + first, k,
                 layer.codebook.data() + first);
  layer.codebook_q8_grid[2 * i] = lo_h;
  layer.codebook_q8_grid[2 * i + 1] = step;
}

// The indices of `values` in ascending order of value (ties: in index order), as d8 stores them.
template <typename Value>
std::vector<size_t> ascending_order(size_t n, Value value) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return value(a) < value(b); });
  return order;
}

// Row i's entries sorted (labels renumbered), then coded as d8 increments.
void encode_d8_row(LutLayer& layer, int64_t i) {
  const int64_t first = layer.codebook_offset[i], k = layer.codebook_offset[i + 1] - first;
  const std::vector<size_t> order = ascending_order(
      static_cast<size_t>(k), [&](size_t q) { return half_to_float(layer.codebook[first + q]); });
  std::vector<uint8_t> rank(static_cast<size_t>(k));
  for (int64_t q = 0; q < k; ++q) rank[order[q]] = static_cast<uint8_t>(q);
  uint8_t* labels = layer.labels.data() + i * layer.cols;
  for (int64_t j = 0; j < layer.cols; ++j) labels[j] = rank[labels[j]];
  std::vector<uint16_t> sorted(static_cast<size_t>(k));
  for (int64_t q = 0; q < k; ++q) sorted[q] = layer.codebook[first + order[q]];
  const LutRowGrid grid = encode_d8_entries(sorted, layer.codebook_q8.data() + first);
  std::copy(sorted.begin(), sorted.end(), layer.codebook.begin() + first);
  layer.codebook_q8_grid[2 * i] = grid.lo;
  layer.codebook_q8_grid[2 * i + 1] = grid.step;
}

// Zeroed 8-bit codes and grids for every entry and row, marked d8 or q8.
void start_8bit_storage(LutLayer& layer, bool d8) {
  validate(layer, "LUT layer to store in 8 bits");
  layer.codebook_q8.assign(layer.codebook.size(), 0);
  layer.codebook_q8_grid.assign(2 * static_cast<size_t>(layer.rows), 0);
  layer.d8 = d8;
}

}  // namespace

LutRowGrid encode_q8_entries(std::span<uint16_t> entries, uint8_t* codes) {
  if (entries.empty()) return {};
  float mn = half_to_float(entries[0]), mx = mn;
  for (const uint16_t e : entries) {
    mn = std::min(mn, half_to_float(e));
    mx = std::max(mx, half_to_float(e));
  }
  const uint16_t lo = half_toward(mn, false);
  const float span = mx - half_to_float(lo);
  const uint16_t step = span > 0.0f ? half_toward(span / 255.0f, true) : uint16_t{0};
  const float s = half_to_float(step);
  for (size_t q = 0; q < entries.size(); ++q) {
    const float v = half_to_float(entries[q]);
    // The rounded quotient is the nearest code up to fp16 rounding: look one either side.
    const float g = s > 0.0f ? std::nearbyint((v - half_to_float(lo)) / s) : 0.0f;
    const int guess = static_cast<int>(std::clamp(g, 0.0f, 255.0f));
    int best = guess;
    for (int c = std::max(guess - 1, 0); c <= std::min(guess + 1, 255); ++c)
      if (std::fabs(half_to_float(lut_q8_entry(lo, step, static_cast<uint8_t>(c))) - v) <
          std::fabs(half_to_float(lut_q8_entry(lo, step, static_cast<uint8_t>(best))) - v))
        best = c;
    codes[q] = static_cast<uint8_t>(best);
    entries[q] = lut_q8_entry(lo, step, static_cast<uint8_t>(best));
  }
  return {lo, step};
}

LutRowGrid encode_d8_entries(std::span<uint16_t> ascending, uint8_t* codes) {
  const auto k = static_cast<int64_t>(ascending.size());
  if (k == 0) return {};
  float gap = 0.0f;
  for (int64_t q = 1; q < k; ++q)
    gap = std::max(gap, half_to_float(ascending[q]) - half_to_float(ascending[q - 1]));
  const uint16_t lo = half_toward(half_to_float(ascending[0]), false);
  const uint16_t step = gap > 0.0f ? half_toward(gap / 254.0f, true) : uint16_t{0};
  const float s = half_to_float(step), l = half_to_float(lo);
  int64_t point = 0;
  for (int64_t q = 0; q < k; ++q) {
    const float v = half_to_float(ascending[q]);
    // The nearest point up to rounding, within [point, point + 255]: look one either side.
    const double guess = s > 0.0f ? std::nearbyint((v - l) / s) : 0.0;
    const int64_t lo_p = point, hi_p = q == 0 ? 255 : point + 255;
    const int64_t g = static_cast<int64_t>(
        std::clamp(guess, static_cast<double>(lo_p), static_cast<double>(hi_p)));
    int64_t best = g;
    for (int64_t c = std::max(g - 1, lo_p); c <= std::min(g + 1, hi_p); ++c)
      if (std::fabs(half_to_float(lut_d8_entry(lo, step, c)) - v) <
          std::fabs(half_to_float(lut_d8_entry(lo, step, best)) - v))
        best = c;
    codes[q] = static_cast<uint8_t>(best - (q == 0 ? 0 : point));
    ascending[q] = lut_d8_entry(lo, step, best);
    point = best;
  }
  return {lo, step};
}

void store_lut_entries(LutEntries entries, std::span<float> lut) {
  if (entries == LutEntries::kF16) {
    for (float& v : lut) v = half_to_float(float_to_half(v));
    return;
  }
  const size_t k = lut.size();
  // d8 codes the entries ascending; q8 takes them in any order.
  std::vector<size_t> order(k);
  std::iota(order.begin(), order.end(), size_t{0});
  if (entries == LutEntries::kD8) order = ascending_order(k, [&](size_t q) { return lut[q]; });
  std::vector<uint16_t> h(k);
  for (size_t q = 0; q < k; ++q) h[q] = float_to_half(lut[order[q]]);
  std::vector<uint8_t> codes(k);
  if (entries == LutEntries::kQ8) encode_q8_entries(h, codes.data());
  if (entries == LutEntries::kD8) encode_d8_entries(h, codes.data());
  for (size_t q = 0; q < k; ++q) lut[order[q]] = half_to_float(h[q]);
}

void encode_codebook_d8(LutLayer& layer) {
  start_8bit_storage(layer, true);
  for (int64_t i = 0; i < layer.rows; ++i) {
    if (is_grid_row(layer, i))
      encode_grid_row(layer, i);
    else
      encode_d8_row(layer, i);
  }
}

void encode_codebook_q8(LutLayer& layer) {
  start_8bit_storage(layer, false);
  for (int64_t i = 0; i < layer.rows; ++i) {
    if (is_grid_row(layer, i)) {
      encode_grid_row(layer, i);
      continue;
    }
    const int64_t first = layer.codebook_offset[i], k = layer.codebook_offset[i + 1] - first;
    const LutRowGrid grid = encode_q8_entries(
        {layer.codebook.data() + first, static_cast<size_t>(k)}, layer.codebook_q8.data() + first);
    layer.codebook_q8_grid[2 * i] = grid.lo;
    layer.codebook_q8_grid[2 * i + 1] = grid.step;
  }
}

void validate(const LutLayer& layer, const char* what) {
  if (layer.rows <= 0 || layer.cols <= 0)
    fail(ErrorKind::kBadInput, "{}: empty LUT layer [{}, {}]", what, layer.rows, layer.cols);
  const auto rows = static_cast<size_t>(layer.rows);
  if (layer.bits.size() != rows || layer.codebook_offset.size() != rows + 1)
    fail(ErrorKind::kBadInput, "{}: {} bit widths and {} codebook offsets for {} rows", what,
         layer.bits.size(), layer.codebook_offset.size(), layer.rows);
  if (layer.labels.size() != rows * static_cast<size_t>(layer.cols))
    fail(ErrorKind::kBadInput, "{}: {} labels, expected {}", what, layer.labels.size(),
         layer.rows * layer.cols);
  if (layer.codebook_offset[0] != 0 ||
      layer.codebook_offset[rows] != static_cast<int64_t>(layer.codebook.size()))
    fail(ErrorKind::kBadInput, "{}: codebook offsets do not span the {} codebook entries", what,
         layer.codebook.size());
  for (size_t i = 0; i < rows; ++i) {
    const int b = layer.bits[i];
    if (b < 1 || b > 8) fail(ErrorKind::kBadInput, "{}: row {} has {} bits", what, i, b);
    const int64_t k = layer.codebook_offset[i + 1] - layer.codebook_offset[i];
    if (k != (int64_t{1} << b))
      fail(ErrorKind::kBadInput, "{}: row {} has {} LUT entries for {} bits (need {})", what, i, k,
           b, 1 << b);
    for (int64_t j = 0; j < layer.cols; ++j)
      if (layer.labels[i * static_cast<size_t>(layer.cols) + static_cast<size_t>(j)] >= k)
        fail(ErrorKind::kBadInput, "{}: label at row {} column {} exceeds {} bits", what, i, j, b);
  }
  for (uint16_t c : layer.codebook)
    if (!std::isfinite(half_to_float(c)))
      fail(ErrorKind::kBadInput, "{}: non-finite codebook entry", what);
  if (!layer.grid_rows.empty()) {
    if (layer.grid_rows.size() != rows)
      fail(ErrorKind::kBadInput, "{}: {} grid-row flags for {} rows", what, layer.grid_rows.size(),
           layer.rows);
    for (size_t i = 0; i < rows; ++i)
      if (layer.grid_rows[i] > 1)
        fail(ErrorKind::kBadInput, "{}: grid-row flag {} of row {}", what, layer.grid_rows[i], i);
  }
  if (!layer.codebook_q8.empty() || !layer.codebook_q8_grid.empty()) validate_q8(layer, what);
  validate(layer.sparse, layer.rows, layer.cols, what);
  if (!layer.alpha.empty()) {
    if (layer.alpha.size() != static_cast<size_t>(layer.cols))
      fail(ErrorKind::kBadInput, "{}: {} alpha values for {} columns", what, layer.alpha.size(),
           layer.cols);
    for (size_t j = 0; j < layer.alpha.size(); ++j) {
      const float a = half_to_float(layer.alpha[j]);
      if (!(a > 0.0f) || !std::isfinite(a))
        fail(ErrorKind::kBadInput, "{}: alpha {} of column {} is not positive and finite", what, a,
             j);
    }
  }
}

Tensor dequantize(const LutLayer& layer) {
  validate(layer, "LUT layer");
  Tensor w({layer.rows, layer.cols});
  std::vector<float> alpha(static_cast<size_t>(layer.cols), 1.0f);
  for (size_t j = 0; j < layer.alpha.size(); ++j) alpha[j] = half_to_float(layer.alpha[j]);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < layer.rows; ++i) {
    const uint16_t* lut = layer.codebook.data() + layer.codebook_offset[static_cast<size_t>(i)];
    const uint8_t* l = layer.labels.data() + i * layer.cols;
    float* out = w.data() + i * layer.cols;
    for (int64_t j = 0; j < layer.cols; ++j)
      out[j] = half_to_float(lut[l[j]]) / alpha[static_cast<size_t>(j)];
  }
  add_to_dense(layer.sparse, layer.cols, w.data());
  return w;
}

void set_sparse_corrections(LutLayer& layer, const Tensor& w) {
  if (layer.sparse.empty()) return;
  std::fill(layer.sparse.values.begin(), layer.sparse.values.end(), uint16_t{0});
  set_corrections(layer.sparse, w, dequantize(layer));
}

}  // namespace skim::quant
