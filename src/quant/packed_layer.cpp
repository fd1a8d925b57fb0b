#include "src/quant/packed_layer.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/lut_row.h"
#include "src/core/error.h"
#include "src/core/half.h"

namespace skim::quant {

void pack_row(const uint8_t* values, int64_t cols, int bits, uint8_t* out) {
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t acc = 0;
  int filled = 0;
  for (int64_t j = 0; j < cols; ++j) {
    acc |= (values[j] & mask) << filled;
    filled += bits;
    while (filled >= 8) {
      *out++ = static_cast<uint8_t>(acc);
      acc >>= 8;
      filled -= 8;
    }
  }
  if (filled > 0) *out = static_cast<uint8_t>(acc);
}

void unpack_row(const uint8_t* packed, int64_t cols, int bits, uint8_t* out) {
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t acc = 0;
  int filled = 0;
  for (int64_t j = 0; j < cols; ++j) {
    if (filled < bits) {
      acc |= static_cast<uint64_t>(*packed++) << filled;
      filled += 8;
    }
    out[j] = static_cast<uint8_t>(acc & mask);
    acc >>= bits;
    filled -= bits;
  }
}

PackedLutLayer pack(const LutLayer& layer) {
  validate(layer, "LUT layer");
  if (!layer.grid_rows.empty() && layer.codebook_q8.empty())
    fail(ErrorKind::kBadInput, "LUT layer: grid rows need 8-bit LUT entries (--lut q8 or d8)");
  PackedLutLayer p;
  p.rows = layer.rows;
  p.cols = layer.cols;
  p.bits = layer.bits;
  p.codebook = layer.codebook;
  p.codebook_q8 = layer.codebook_q8;
  p.codebook_q8_grid = layer.codebook_q8_grid;
  p.grid_rows = layer.grid_rows;
  p.d8 = layer.d8;
  p.alpha = layer.alpha;
  p.sparse = layer.sparse;
  const PackedLutOffsets o = packed_lut_offsets(p.cols, p.bits);
  p.labels.assign(static_cast<size_t>(o.label.back()), 0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.rows; ++i)
    pack_row(layer.labels.data() + i * p.cols, p.cols, p.bits[static_cast<size_t>(i)],
             p.labels.data() + o.label[static_cast<size_t>(i)]);
  return p;
}

LutLayer unpack(const PackedLutLayer& p) {
  const PackedLutOffsets o = packed_lut_offsets(p.cols, p.bits);
  SKIM_ASSERT(p.bits.size() == static_cast<size_t>(p.rows) &&
              p.labels.size() == static_cast<size_t>(o.label.back()) &&
              p.codebook.size() == static_cast<size_t>(o.codebook.back()));
  LutLayer l;
  l.rows = p.rows;
  l.cols = p.cols;
  l.bits = p.bits;
  l.codebook_offset = o.codebook;
  l.codebook = p.codebook;
  l.codebook_q8 = p.codebook_q8;
  l.codebook_q8_grid = p.codebook_q8_grid;
  l.grid_rows = p.grid_rows;
  l.d8 = p.d8;
  l.alpha = p.alpha;
  l.sparse = p.sparse;
  l.labels.resize(static_cast<size_t>(p.rows * p.cols));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.rows; ++i)
    unpack_row(p.labels.data() + o.label[static_cast<size_t>(i)], p.cols,
               p.bits[static_cast<size_t>(i)], l.labels.data() + i * p.cols);
  return l;
}

PackedUniformLayer pack(const UniformLayer& layer) {
  validate(layer, "uniform layer");
  PackedUniformLayer p;
  p.rows = layer.rows;
  p.cols = layer.cols;
  p.bits = layer.bits;
  p.group_size = layer.group_size;
  p.scale = layer.scale;
  p.zero = layer.zero;
  p.perm = layer.perm;
  p.group_bits = layer.group_bits;
  const std::vector<int64_t> o = uniform_group_offsets(p.cols, p.bits, p.group_size, p.group_bits);
  const int64_t row_bytes = o.back(), group_cols = p.group_bits.empty() ? p.cols : p.group_size;
  p.codes.assign(static_cast<size_t>(p.rows * row_bytes), 0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.rows; ++i)
    for (size_t g = 0; g + 1 < o.size(); ++g) {
      const int64_t j0 = static_cast<int64_t>(g) * group_cols;
      pack_row(layer.codes.data() + i * p.cols + j0, std::min(p.cols, j0 + group_cols) - j0,
               p.group_width(static_cast<int64_t>(g)), p.codes.data() + i * row_bytes + o[g]);
    }
  return p;
}

UniformLayer unpack(const PackedUniformLayer& p) {
  const std::vector<int64_t> o = uniform_group_offsets(p.cols, p.bits, p.group_size, p.group_bits);
  const int64_t row_bytes = o.back(), group_cols = p.group_bits.empty() ? p.cols : p.group_size;
  SKIM_ASSERT(p.codes.size() == static_cast<size_t>(p.rows * row_bytes));
  UniformLayer l;
  l.rows = p.rows;
  l.cols = p.cols;
  l.bits = p.bits;
  l.group_size = p.group_size;
  l.scale = p.scale;
  l.zero = p.zero;
  l.perm = p.perm;
  l.group_bits = p.group_bits;
  l.codes.resize(static_cast<size_t>(p.rows * p.cols));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.rows; ++i)
    for (size_t g = 0; g + 1 < o.size(); ++g) {
      const int64_t j0 = static_cast<int64_t>(g) * group_cols;
      unpack_row(p.codes.data() + i * row_bytes + o[g], std::min(p.cols, j0 + group_cols) - j0,
                 p.group_width(static_cast<int64_t>(g)), l.codes.data() + i * p.cols + j0);
    }
  return l;
}

namespace {

// Rows of W^ decoded per tile of gemm: a 4 MiB fp32 tile (256 rows at 4096 columns). Each tile's
// sgemm packs all of X again, so at large batches fewer, larger tiles win: on the 2-core
// development VM 4 MiB tiles beat 1-2 MiB ones by 15-25 % at 4096x4096, batch 4096.
int64_t tile_rows_for(int64_t cols) {
  constexpr int64_t kTileBytes = int64_t{4} << 20;
  return std::max<int64_t>(16, kTileBytes / (4 * cols) / 16 * 16);
}

// Rows above this many weights are split over OpenMP threads in gemv; smaller ones stay on one
// thread, where waking the team would cost more than the product.
constexpr int64_t kParallelGemvWeights = int64_t{1} << 16;

// Y[:, tile] = X tile^T for consecutive row tiles, each tile decoded by `decode(r0, r1, tile)`
// into fp32 [r1 - r0, cols]: rows decoded in parallel (OpenMP), then one threaded sgemm per tile.
// (OpenMP over tiles with single-threaded sgemm measured no faster on 2 cores, and balances badly
// when a layer has few tiles.) Tile boundaries depend on the shape only and sgemm splits only the
// output, so every output element is one fixed sequence of operations whatever the thread count.
template <typename Decode>
void tiled_gemm(int64_t rows, int64_t cols, const float* x, int64_t batch, float* y,
                const Decode& decode) {
  const int64_t tile = std::min(rows, tile_rows_for(cols));
  const int64_t tiles = (rows + tile - 1) / tile;
  std::vector<float> w(static_cast<size_t>(tile * cols));
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t r0 = t * tile, r1 = std::min(rows, r0 + tile);
    const int64_t n = r1 - r0;
#pragma omp parallel for schedule(static) if (n * cols >= kParallelGemvWeights)
    for (int64_t i = r0; i < r1; ++i) decode(i, i + 1, w.data() + (i - r0) * cols);
    kernels::gemm(false, true, batch, n, cols, 1.0f, x, cols, w.data(), cols, 0.0f, y + r0, rows);
  }
}

// 1 / alpha_j: the tile multiplies instead of dividing (within an ulp of LUT / alpha).
std::vector<float> reciprocal_alpha(const PackedLutLayer& layer) {
  std::vector<float> inv(layer.alpha.size());
  for (size_t j = 0; j < inv.size(); ++j) inv[j] = 1.0f / half_to_float(layer.alpha[j]);
  return inv;
}

void check_lut_layout(const PackedLutLayer& layer, const PackedLutOffsets& o) {
  SKIM_ASSERT(layer.bits.size() == static_cast<size_t>(layer.rows));
  SKIM_ASSERT(layer.labels.size() == static_cast<size_t>(o.label.back()));
  SKIM_ASSERT(layer.codebook.size() == static_cast<size_t>(o.codebook.back()));
  SKIM_ASSERT(layer.alpha.empty() || layer.alpha.size() == static_cast<size_t>(layer.cols));
  SKIM_ASSERT(layer.sparse.empty() ||
              layer.sparse.row_ptr.size() == static_cast<size_t>(layer.rows + 1));
}

void load_lut(const PackedLutLayer& layer, const PackedLutOffsets& o, size_t r, float* lut) {
  const int64_t k_count = int64_t{1} << layer.bits[r];
  for (int64_t k = 0; k < k_count; ++k)
    lut[k] = half_to_float(layer.codebook[static_cast<size_t>(o.codebook[r] + k)]);
}

void check_uniform_layout(const PackedUniformLayer& layer) {
  SKIM_ASSERT(layer.bits >= 1 && layer.bits <= 8);
  SKIM_ASSERT(layer.group_bits.empty() ||
              (layer.perm.empty() && layer.group_size % 8 == 0 &&
               layer.group_bits.size() == static_cast<size_t>(layer.groups())));
  SKIM_ASSERT(layer.codes.size() == static_cast<size_t>(layer.rows * uniform_row_bytes(layer)));
  SKIM_ASSERT(layer.scale.size() == static_cast<size_t>(layer.rows * layer.groups()));
  SKIM_ASSERT(layer.zero.size() == layer.scale.size());
}

// Decodes rows of a packed uniform layer: w_ij = s_ig * (q_ij - z_ig), g the group of column j.
class UniformDecoder {
 public:
  explicit UniformDecoder(const PackedUniformLayer& layer)
      : layer_(layer),
        row_bytes_(uniform_row_bytes(layer)),
        group_cols_(layer.group_size <= 0 ? layer.cols : layer.group_size),
        byte_aligned_groups_(layer.perm.empty() &&
                             (layer.groups() == 1 || layer.group_size % 8 == 0)) {
    // With group widths each group has its own stream; otherwise group g of a byte-aligned
    // layer starts g * group_cols * bits / 8 bytes into the row's one stream.
    if (!layer.group_bits.empty()) {
      group_offset_ =
          uniform_group_offsets(layer.cols, layer.bits, layer.group_size, layer.group_bits);
    } else {
      for (int64_t g = 0; g <= layer.groups(); ++g)
        group_offset_.push_back(g * group_cols_ * layer.bits / 8);
    }
    UniformLayer shape;  // column_groups needs only the grouping fields
    shape.cols = layer.cols;
    shape.group_size = layer.group_size;
    shape.perm = layer.perm;
    group_ = column_groups(shape);
    for (int k = 0; k < 256; ++k) levels_[k] = static_cast<float>(k);  // any group width
  }

  // Rows [r0, r1) into out [r1 - r0, cols].
  void operator()(int64_t r0, int64_t r1, float* out) const {
    const int64_t n = layer_.cols, groups = layer_.groups();
    for (int64_t i = r0; i < r1; ++i) {
      float* w = out + (i - r0) * n;
      if (byte_aligned_groups_) {  // one decode pass through each group's table of s * (q - z)
        float table[256];
        for (int64_t g = 0; g < groups; ++g) {
          group_table(i, g, table);
          const int64_t j0 = g * group_cols_, j1 = std::min(n, j0 + group_cols_);
          kernels::lut_decode(group_codes(i, g), j1 - j0, layer_.group_width(g), table, w + j0);
        }
        continue;
      }
      kernels::lut_decode(layer_.codes.data() + i * row_bytes_, n, layer_.bits, levels_, w);
      const uint16_t* s = layer_.scale.data() + i * groups;
      const uint16_t* z = layer_.zero.data() + i * groups;
      if (layer_.perm.empty()) {  // groups are consecutive runs of columns
        const int64_t size = layer_.group_size <= 0 ? n : layer_.group_size;
        for (int64_t g = 0; g < groups; ++g) {
          const float sg = half_to_float(s[g]), zg = half_to_float(z[g]);
          const int64_t j1 = std::min(n, (g + 1) * size);
          for (int64_t j = g * size; j < j1; ++j) w[j] = sg * (w[j] - zg);
        }
      } else {
        float sz[2 * 4096];
        std::vector<float> heap;
        float* table = sz;
        if (groups > 4096) {
          heap.resize(static_cast<size_t>(2 * groups));
          table = heap.data();
        }
        for (int64_t g = 0; g < groups; ++g) {
          table[2 * g] = half_to_float(s[g]);
          table[2 * g + 1] = half_to_float(z[g]);
        }
        for (int64_t j = 0; j < n; ++j) {
          const int32_t g = group_[static_cast<size_t>(j)];
          w[j] = table[2 * g] * (w[j] - table[2 * g + 1]);
        }
      }
    }
  }

  // Row i dotted with x, straight from the codes when groups are byte-aligned runs of columns.
  float dot(int64_t i, const float* x, float* scratch) const {
    const int64_t n = layer_.cols;
    if (byte_aligned_groups_) {
      float table[256], acc = 0.0f;
      for (int64_t g = 0; g < layer_.groups(); ++g) {
        group_table(i, g, table);
        const int64_t j0 = g * group_cols_, j1 = std::min(n, j0 + group_cols_);
        acc += kernels::lut_dot(group_codes(i, g), j1 - j0, layer_.group_width(g), table, x + j0);
      }
      return acc;
    }
    (*this)(i, i + 1, scratch);
    float acc[8] = {};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
      for (int k = 0; k < 8; ++k) acc[k] += scratch[j + k] * x[j + k];
    for (int k = 0; j < n; ++j, ++k) acc[k] += scratch[j] * x[j];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  }

 private:
  // table[q] = s * (q - z) for group g of row i.
  void group_table(int64_t i, int64_t g, float* table) const {
    const auto k = static_cast<size_t>(i * layer_.groups() + g);
    const float s = half_to_float(layer_.scale[k]), z = half_to_float(layer_.zero[k]);
    for (int q = 0; q < (1 << layer_.group_width(g)); ++q) table[q] = s * (levels_[q] - z);
  }
  // First code byte of group g of row i (groups start on byte boundaries: 8 | group_cols_).
  const uint8_t* group_codes(int64_t i, int64_t g) const {
    return layer_.codes.data() + i * row_bytes_ + group_offset_[static_cast<size_t>(g)];
  }

  const PackedUniformLayer& layer_;
  int64_t row_bytes_;
  int64_t group_cols_;
  bool byte_aligned_groups_;
  std::vector<int64_t> group_offset_;
  std::vector<int32_t> group_;
  float levels_[256];
};

}  // namespace

void gemv(const PackedLutLayer& layer, const float* x, float* y) {
  const PackedLutOffsets o = packed_lut_offsets(layer.cols, layer.bits);
  check_lut_layout(layer, o);
  const int64_t n = layer.cols;
  // x / alpha once, so each row is a plain LUT dot product.
  std::vector<float> xs(x, x + n);
  if (!layer.alpha.empty())
    for (int64_t j = 0; j < n; ++j)
      xs[static_cast<size_t>(j)] /= half_to_float(layer.alpha[static_cast<size_t>(j)]);
      // Dynamic: rows of different widths take different times.
#pragma omp parallel for schedule(dynamic, 32) if (layer.rows * n >= kParallelGemvWeights)
  for (int64_t i = 0; i < layer.rows; ++i) {
    const auto r = static_cast<size_t>(i);
    y[i] = kernels::lut_dot(layer.labels.data() + o.label[r], n, layer.bits[r],
                            layer.codebook.data() + o.codebook[r], xs.data());
  }
  gemv_add(layer.sparse, x, y);
}

void gemm(const PackedLutLayer& layer, const float* x, int64_t batch, float* y) {
  const PackedLutOffsets o = packed_lut_offsets(layer.cols, layer.bits);
  check_lut_layout(layer, o);
  const int64_t n = layer.cols;
  const std::vector<float> inv_alpha = reciprocal_alpha(layer);
  tiled_gemm(layer.rows, n, x, batch, y, [&](int64_t r0, int64_t r1, float* out) {
    for (int64_t i = r0; i < r1; ++i) {
      const auto r = static_cast<size_t>(i);
      float lut[256];
      load_lut(layer, o, r, lut);
      float* w = out + (i - r0) * n;
      kernels::lut_decode(layer.labels.data() + o.label[r], n, layer.bits[r], lut, w);
      if (!inv_alpha.empty())
        for (int64_t j = 0; j < n; ++j) w[j] *= inv_alpha[static_cast<size_t>(j)];
    }
  });
  gemm_add(layer.sparse, layer.rows, n, x, batch, y);
}

void gemv(const PackedUniformLayer& layer, const float* x, float* y) {
  check_uniform_layout(layer);
  const UniformDecoder decode(layer);
  const int64_t n = layer.cols;
#pragma omp parallel if (layer.rows * n >= kParallelGemvWeights)
  {
    std::vector<float> w(static_cast<size_t>(n));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < layer.rows; ++i) y[i] = decode.dot(i, x, w.data());
  }
}

void gemm(const PackedUniformLayer& layer, const float* x, int64_t batch, float* y) {
  check_uniform_layout(layer);
  const UniformDecoder decode(layer);
  tiled_gemm(layer.rows, layer.cols, x, batch, y, decode);
}

std::vector<uint8_t> pack_column_codes(const std::vector<uint8_t>& codes, int64_t rows,
                                       const std::vector<uint8_t>& bits) {
  const ColumnLutOffsets o = column_lut_offsets(bits);
  const auto cols = static_cast<int64_t>(bits.size());
  SKIM_ASSERT(codes.size() == static_cast<size_t>(rows * cols));
  std::vector<uint8_t> out(static_cast<size_t>(rows * o.row_bytes), 0);
  for (int64_t i = 0; i < rows; ++i) {
    uint8_t* row = out.data() + i * o.row_bytes;
    for (int64_t j = 0; j < cols; ++j) {
      const uint32_t v = codes[static_cast<size_t>(i * cols + j)] & ((1u << bits[j]) - 1);
      const int64_t at = o.bit[j];
      row[at / 8] = static_cast<uint8_t>(row[at / 8] | (v << (at % 8)));
      if (at % 8 + bits[j] > 8) row[at / 8 + 1] = static_cast<uint8_t>(v >> (8 - at % 8));
    }
  }
  return out;
}

namespace {

// Code j of a packed row (it spans at most two bytes: widths are at most 8).
inline uint32_t column_code(const uint8_t* row, const ColumnLutOffsets& o, int64_t j, int bits) {
  const int64_t at = o.bit[j];
  uint32_t v = row[at / 8] >> (at % 8);
  if (at % 8 + bits > 8) v |= static_cast<uint32_t>(row[at / 8 + 1]) << (8 - at % 8);
  return v & ((1u << bits) - 1);
}

void check_column_lut_layout(const PackedColumnLutLayer& layer, const ColumnLutOffsets& o) {
  SKIM_ASSERT(layer.bits.size() == static_cast<size_t>(layer.cols));
  SKIM_ASSERT(layer.codebook.size() == static_cast<size_t>(o.codebook.back()));
  SKIM_ASSERT(layer.codes.size() == static_cast<size_t>(layer.rows * o.row_bytes));
}

// Rows [r0, r1) of W^ without the sparse part, from an fp32 copy of the codebook.
void decode_column_lut(const PackedColumnLutLayer& layer, const ColumnLutOffsets& o,
                       const std::vector<float>& codebook, int64_t r0, int64_t r1, float* out) {
  for (int64_t i = r0; i < r1; ++i) {
    const uint8_t* row = layer.codes.data() + i * o.row_bytes;
    float* w = out + (i - r0) * layer.cols;
    for (int64_t j = 0; j < layer.cols; ++j)
      w[j] = codebook[static_cast<size_t>(o.codebook[j] + column_code(row, o, j, layer.bits[j]))];
  }
}

std::vector<float> codebook_f32(const PackedColumnLutLayer& layer) {
  std::vector<float> c(layer.codebook.size());
  for (size_t k = 0; k < c.size(); ++k) c[k] = half_to_float(layer.codebook[k]);
  return c;
}

}  // namespace

std::vector<uint8_t> unpack_column_codes(const PackedColumnLutLayer& layer) {
  const ColumnLutOffsets o = column_lut_offsets(layer.bits);
  check_column_lut_layout(layer, o);
  std::vector<uint8_t> codes(static_cast<size_t>(layer.rows * layer.cols));
  for (int64_t i = 0; i < layer.rows; ++i)
    for (int64_t j = 0; j < layer.cols; ++j)
      codes[static_cast<size_t>(i * layer.cols + j)] = static_cast<uint8_t>(
          column_code(layer.codes.data() + i * o.row_bytes, o, j, layer.bits[j]));
  return codes;
}

Tensor dequantize(const PackedColumnLutLayer& layer) {
  const ColumnLutOffsets o = column_lut_offsets(layer.bits);
  check_column_lut_layout(layer, o);
  Tensor w({layer.rows, layer.cols});
  decode_column_lut(layer, o, codebook_f32(layer), 0, layer.rows, w.data());
  add_to_dense(layer.sparse, layer.cols, w.data());
  return w;
}

void gemv(const PackedColumnLutLayer& layer, const float* x, float* y) {
  const ColumnLutOffsets o = column_lut_offsets(layer.bits);
  check_column_lut_layout(layer, o);
  std::vector<float> table = codebook_f32(layer);  // entry * x_j: one lookup per weight
  for (int64_t j = 0; j < layer.cols; ++j)
    for (int64_t k = o.codebook[j]; k < o.codebook[j + 1]; ++k)
      table[static_cast<size_t>(k)] *= x[j];
#pragma omp parallel for schedule(static) if (layer.rows * layer.cols >= kParallelGemvWeights)
  for (int64_t i = 0; i < layer.rows; ++i) {
    const uint8_t* row = layer.codes.data() + i * o.row_bytes;
    float acc = 0.0f;
    for (int64_t j = 0; j < layer.cols; ++j)
      acc += table[static_cast<size_t>(o.codebook[j] + column_code(row, o, j, layer.bits[j]))];
    y[i] = acc;
  }
  gemv_add(layer.sparse, x, y);
}

void gemm(const PackedColumnLutLayer& layer, const float* x, int64_t batch, float* y) {
  const ColumnLutOffsets o = column_lut_offsets(layer.bits);
  check_column_lut_layout(layer, o);
  const std::vector<float> codebook = codebook_f32(layer);
  tiled_gemm(layer.rows, layer.cols, x, batch, y, [&](int64_t r0, int64_t r1, float* out) {
    decode_column_lut(layer, o, codebook, r0, r1, out);
  });
  gemm_add(layer.sparse, layer.rows, layer.cols, x, batch, y);
}

}  // namespace skim::quant
