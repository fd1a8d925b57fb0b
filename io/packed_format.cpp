#include "io/packed_format.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <span>
#include <vector>

#include "src/core/error.h"
#include "src/core/half.h"

namespace skim::io {
namespace {

using quant::PackedColumnLutLayer;
using quant::PackedLutLayer;
using quant::PackedUniformLayer;
using Json = nlohmann::json;

constexpr const char* kKeyFormat = "skim.format";
constexpr const char* kKeyVersion = "skim.format_version";
constexpr const char* kKeyMethod = "skim.method";
constexpr const char* kKeyLayers = "skim.layers";
constexpr const char* kKeyCrc = "skim.crc32";
constexpr const char* kKeyBits = "skim.bits_per_weight";

// CRC-32 (IEEE 802.3, reflected, as zlib.crc32), so any tool can verify a tensor's bytes.
uint32_t crc32(std::span<const uint8_t> bytes) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (uint8_t b : bytes) c = table[(c ^ b) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string hex32(uint32_t v) {
  return fmt::format("{:08x}", v);
}

template <typename T>
std::span<const uint8_t> as_bytes(const std::vector<T>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(T)};
}

// Names of a layer's tensors.
std::string lut_tensor(const std::string& layer, const char* part) {
  return layer + ".lut." + part;
}
std::string uq_tensor(const std::string& layer, const char* part) {
  return layer + ".uq." + part;
}
std::string qdec_tensor(const std::string& layer, const char* part) {
  return layer + ".qdec." + part;
}
std::string clut_tensor(const std::string& layer, const char* part) {
  return layer + ".clut." + part;
}

// Far above any real linear (LLaMA-2-70B's largest has 2.3e8 weights), low enough that no size
// derived from the shape (label bytes, LUT entries, groups) overflows int64.
constexpr int64_t kMaxLayerWeights = int64_t{1} << 48;

void check_shape(int64_t rows, int64_t cols, const std::string& name, const std::string& where) {
  const auto n = checked_numel({rows, cols});
  if (rows <= 0 || cols <= 0 || !n || *n > kMaxLayerWeights)
    fail(ErrorKind::kBadInput, "{}: layer {}: shape [{}, {}] is empty or out of range", where, name,
         rows, cols);
}

}  // namespace

void check_packed_layer(const PackedLutLayer& l, const std::string& name,
                        const std::string& where) {
  check_shape(l.rows, l.cols, name, where);
  if (l.bits.size() != static_cast<size_t>(l.rows))
    fail(ErrorKind::kBadInput, "{}: tensor {}: {} entries for {} rows", where,
         lut_tensor(name, "bits"), l.bits.size(), l.rows);
  for (size_t i = 0; i < l.bits.size(); ++i)
    if (l.bits[i] < 1 || l.bits[i] > 8)
      fail(ErrorKind::kBadInput, "{}: tensor {}: row {} has {} bits (1..8 allowed)", where,
           lut_tensor(name, "bits"), i, l.bits[i]);
  const quant::PackedLutOffsets o = quant::packed_lut_offsets(l.cols, l.bits);
  if (l.codebook.size() != static_cast<size_t>(o.codebook.back()))
    fail(ErrorKind::kBadInput, "{}: tensor {}: {} entries, the row widths need {}", where,
         lut_tensor(name, "codebook"), l.codebook.size(), o.codebook.back());
  for (uint16_t c : l.codebook)
    if (!std::isfinite(half_to_float(c)))
      fail(ErrorKind::kBadInput, "{}: tensor {}: non-finite entry", where,
           lut_tensor(name, "codebook"));
  const quant::LutEntries entries = l.codebook_q8.empty() ? quant::LutEntries::kF16
                                    : l.d8                ? quant::LutEntries::kD8
                                                          : quant::LutEntries::kQ8;
  if (!l.codebook_q8.empty() || !l.codebook_q8_grid.empty()) {
    if (l.codebook_q8.size() != l.codebook.size())
      fail(ErrorKind::kBadInput, "{}: tensor {}: {} entries, the row widths need {}", where,
           lut_tensor(name, "codes"), l.codebook_q8.size(), l.codebook.size());
    if (l.codebook_q8_grid.size() != 2 * static_cast<size_t>(l.rows))
      fail(ErrorKind::kBadInput, "{}: tensor {}: {} values for {} rows", where,
           lut_tensor(name, "grid"), l.codebook_q8_grid.size(), l.rows);
    for (int64_t i = 0; i < l.rows; ++i) {
      const uint16_t lo = l.codebook_q8_grid[2 * i], step = l.codebook_q8_grid[2 * i + 1];
      if (!quant::lut_q8_grid_valid(lo, step))
        fail(ErrorKind::kBadInput, "{}: tensor {}: row {} has lo {} and step {}", where,
             lut_tensor(name, "grid"), i, half_to_float(lo), half_to_float(step));
      const int64_t n = o.codebook[i + 1] - o.codebook[i];
      std::vector<uint16_t> decoded(static_cast<size_t>(n));
      quant::decode_lut_row(entries, lo, step, l.codebook_q8.data() + o.codebook[i], n,
                            decoded.data());
      for (int64_t q = 0; q < n; ++q)
        if (l.codebook[o.codebook[i] + q] != decoded[q])
          fail(ErrorKind::kBadInput, "{}: layer {}: row {}: LUT entry {} is not its code decoded",
               where, name, i, q);
    }
  }
  if (!l.grid_rows.empty()) {
    if (l.grid_rows.size() != static_cast<size_t>(l.rows) || l.codebook_q8.empty())
      fail(ErrorKind::kBadInput, "{}: layer {}: {} grid-row flags for {} rows{}", where, name,
           l.grid_rows.size(), l.rows, l.codebook_q8.empty() ? " without 8-bit entries" : "");
    for (int64_t i = 0; i < l.rows; ++i) {
      if (l.grid_rows[i] > 1)
        fail(ErrorKind::kBadInput, "{}: layer {}: grid-row flag {} of row {}", where, name,
             l.grid_rows[i], i);
      if (l.grid_rows[i] != 0)
        for (int64_t k = o.codebook[i]; k < o.codebook[i + 1]; ++k)
          if (l.codebook_q8[k] != quant::grid_row_code(entries, k - o.codebook[i]))
            fail(ErrorKind::kBadInput, "{}: layer {}: grid row {} has code {} at entry {}", where,
                 name, i, l.codebook_q8[k], k - o.codebook[i]);
    }
  }
  if (l.labels.size() != static_cast<size_t>(o.label.back()))
    fail(ErrorKind::kBadInput, "{}: tensor {}: {} bytes, the row widths need {}", where,
         lut_tensor(name, "labels"), l.labels.size(), o.label.back());
  quant::validate(l.sparse, l.rows, l.cols, fmt::format("{}: layer {}", where, name));
  if (!l.alpha.empty()) {
    if (l.alpha.size() != static_cast<size_t>(l.cols))
      fail(ErrorKind::kBadInput, "{}: tensor {}: {} entries for {} columns", where,
           lut_tensor(name, "alpha"), l.alpha.size(), l.cols);
    for (uint16_t a : l.alpha) {
      const float v = half_to_float(a);
      if (!(v > 0.0f) || !std::isfinite(v))
        fail(ErrorKind::kBadInput, "{}: tensor {}: value {} is not positive and finite", where,
             lut_tensor(name, "alpha"), v);
    }
  }
}

void check_packed_layer(const quant::PackedColumnLutLayer& l, const std::string& name,
                        const std::string& where) {
  check_shape(l.rows, l.cols, name, where);
  if (l.bits.size() != static_cast<size_t>(l.cols))
    fail(ErrorKind::kBadInput, "{}: tensor {}: {} entries for {} columns", where,
         clut_tensor(name, "bits"), l.bits.size(), l.cols);
  for (size_t j = 0; j < l.bits.size(); ++j)
    if (l.bits[j] < 1 || l.bits[j] > 8)
      fail(ErrorKind::kBadInput, "{}: tensor {}: column {} has {} bits (1..8 allowed)", where,
           clut_tensor(name, "bits"), j, l.bits[j]);
  const quant::ColumnLutOffsets o = quant::column_lut_offsets(l.bits);
  if (l.codebook.size() != static_cast<size_t>(o.codebook.back()))
    fail(ErrorKind::kBadInput, "{}: tensor {}: {} entries, the column widths need {}", where,
         clut_tensor(name, "codebook"), l.codebook.size(), o.codebook.back());
  for (uint16_t e : l.codebook)
    if (!std::isfinite(half_to_float(e)))
      fail(ErrorKind::kBadInput, "{}: tensor {}: non-finite entry", where,
           clut_tensor(name, "codebook"));
  if (l.codes.size() != static_cast<size_t>(l.rows * o.row_bytes))
    fail(ErrorKind::kBadInput, "{}: tensor {}: {} bytes, the column widths need {}", where,
         clut_tensor(name, "codes"), l.codes.size(), l.rows * o.row_bytes);
  quant::validate(l.sparse, l.rows, l.cols, fmt::format("{}: layer {}", where, name));
}

void check_packed_layer(const quant::ResidualLayer& l, const std::string& name,
                        const std::string& where) {
  check_shape(l.rows, l.cols, name, where);
  if (l.scale.size() != static_cast<size_t>(l.rows))
    fail(ErrorKind::kBadInput, "{}: tensor {}: {} entries for {} rows", where,
         qdec_tensor(name, "scale"), l.scale.size(), l.rows);
  if (l.codes.size() != static_cast<size_t>(l.cols * l.column_bytes()))
    fail(ErrorKind::kBadInput, "{}: tensor {}: {} bytes, [{}, {}] needs {}", where,
         qdec_tensor(name, "codes"), l.codes.size(), l.rows, l.cols, l.cols * l.column_bytes());
  for (uint16_t s : l.scale) {
    const float v = half_to_float(s);
    if (!(v >= 0.0f) || !std::isfinite(v))
      fail(ErrorKind::kBadInput, "{}: tensor {}: scale {} is not finite and >= 0", where,
           qdec_tensor(name, "scale"), v);
  }
  if (l.rows % 2 != 0)  // a last odd row leaves each channel's high nibble unused
    for (int64_t j = 0; j < l.cols; ++j)
      if ((l.codes[static_cast<size_t>((j + 1) * l.column_bytes() - 1)] >> 4) != 0)
        fail(ErrorKind::kBadInput, "{}: tensor {}: channel {}'s padding nibble is not 0", where,
             qdec_tensor(name, "codes"), j);
}

void check_packed_layer(const PackedUniformLayer& l, const std::string& name,
                        const std::string& where) {
  check_shape(l.rows, l.cols, name, where);
  if (l.bits < 1 || l.bits > 8 || l.group_size < 0)
    fail(ErrorKind::kBadInput, "{}: layer {}: bad bits {} or group size {}", where, name, l.bits,
         l.group_size);
  const auto params = static_cast<size_t>(l.rows * l.groups());
  if (l.scale.size() != params || l.zero.size() != params)
    fail(ErrorKind::kBadInput, "{}: layer {}: {} scales and {} zeros, expected {}", where, name,
         l.scale.size(), l.zero.size(), params);
  if (!quant::uniform_group_bits_valid(l.groups(), l.group_size, !l.perm.empty(), l.group_bits))
    fail(ErrorKind::kBadInput,
         "{}: tensor {}: {} group widths for {} groups of {} columns (need widths 1..8, groups of "
         "a multiple of 8 columns and no permutation)",
         where, uq_tensor(name, "group_bits"), l.group_bits.size(), l.groups(), l.group_size);
  for (size_t k = 0; k < params; ++k) {
    const float maxq =
        static_cast<float>((1 << l.group_width(static_cast<int64_t>(k) % l.groups())) - 1);
    const float s = half_to_float(l.scale[k]);
    const float z = half_to_float(l.zero[k]);
    if (!(s > 0.0f) || !std::isfinite(s))
      fail(ErrorKind::kBadInput, "{}: tensor {}: scale {} is not positive and finite", where,
           uq_tensor(name, "scale"), s);
    if (!(z >= 0.0f && z <= maxq && z == std::floor(z)))
      fail(ErrorKind::kBadInput, "{}: tensor {}: zero point {} is not an integer in [0, {}]", where,
           uq_tensor(name, "zero"), z, maxq);
  }
  if (l.codes.size() != static_cast<size_t>(l.rows * quant::uniform_row_bytes(l)))
    fail(ErrorKind::kBadInput, "{}: tensor {}: {} bytes, expected {} rows of {}", where,
         uq_tensor(name, "codes"), l.codes.size(), l.rows, quant::uniform_row_bytes(l));
  if (!l.perm.empty()) {
    bool ok = l.perm.size() == static_cast<size_t>(l.cols);
    std::vector<char> seen(ok ? l.perm.size() : 0, 0);
    for (size_t k = 0; ok && k < l.perm.size(); ++k) {
      const int32_t j = l.perm[k];
      ok = j >= 0 && j < l.cols && !seen[static_cast<size_t>(j)];
      if (ok) seen[static_cast<size_t>(j)] = 1;
    }
    if (!ok)
      fail(ErrorKind::kBadInput, "{}: tensor {}: not a permutation of the {} columns", where,
           uq_tensor(name, "perm"), l.cols);
  }
}

namespace {

// Adds a raw tensor and records its CRC.
template <typename T>
void add_tensor(SafetensorsWriter& w, Json& crc, const std::string& name, StDtype dtype,
                std::vector<int64_t> shape, const std::vector<T>& values) {
  const std::span<const uint8_t> bytes = as_bytes(values);
  crc[name] = hex32(crc32(bytes));
  w.add_raw(name, dtype, std::move(shape), bytes);
}

// Reads a raw tensor of the expected dtype and shape into a vector.
template <typename T>
std::vector<T> read_tensor(const SafetensorsReader& r, const std::string& name, StDtype dtype,
                           const std::vector<int64_t>& shape) {
  if (!r.has(name)) fail(ErrorKind::kBadInput, "{}: tensor {} is missing", r.path(), name);
  const StTensorView v = r.raw(name);
  if (v.dtype != dtype || v.shape != shape)
    fail(ErrorKind::kBadInput, "{}: tensor {} is {} {}, expected {} {}", r.path(), name,
         st_dtype_name(v.dtype), shape_string(v.shape), st_dtype_name(dtype), shape_string(shape));
  std::vector<T> out(v.bytes.size() / sizeof(T));
  if (!v.bytes.empty()) std::memcpy(out.data(), v.bytes.data(), v.bytes.size());
  return out;
}

// A sparse part as stored: per row its entry count (U8, U16 or I32: the narrowest that holds the
// largest; format 6 wrote I32 always), the columns (U16, or I32 above 65536 columns) and the fp16
// values; the row pointers are the counts' prefix sums.
// The sparse part of a layer whose tensors are named `tensor(part)` (LUT and column-LUT layers).
template <typename Name>
void write_sparse(SafetensorsWriter& w, Json& crc, const std::string& name, const Name& tensor,
                  const quant::SparsePart& s, int64_t rows, int64_t cols) {
  std::vector<int32_t> counts(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t c = s.row_ptr[i + 1] - s.row_ptr[i];
    if (c > cols) fail(ErrorKind::kInternal, "layer {}: {} sparse entries in a row", name, c);
    counts[static_cast<size_t>(i)] = static_cast<int32_t>(c);
  }
  switch (quant::sparse_count_bits(quant::max_row_count(s))) {
    case 8:
      add_tensor(w, crc, tensor("sparse_counts"), StDtype::kU8, {rows},
                 std::vector<uint8_t>(counts.begin(), counts.end()));
      break;
    case 16:
      add_tensor(w, crc, tensor("sparse_counts"), StDtype::kU16, {rows},
                 std::vector<uint16_t>(counts.begin(), counts.end()));
      break;
    default:
      add_tensor(w, crc, tensor("sparse_counts"), StDtype::kI32, {rows}, counts);
  }
  if (quant::sparse_column_bits(cols) == 16) {
    std::vector<uint16_t> cols(s.cols.begin(), s.cols.end());
    add_tensor(w, crc, tensor("sparse_cols"), StDtype::kU16, {s.nnz()}, cols);
  } else {
    add_tensor(w, crc, tensor("sparse_cols"), StDtype::kI32, {s.nnz()}, s.cols);
  }
  add_tensor(w, crc, tensor("sparse_values"), StDtype::kF16, {s.nnz()}, s.values);
}

template <typename Name>
quant::SparsePart read_sparse(const SafetensorsReader& r, const Name& tensor, int64_t rows,
                              int64_t cols) {
  quant::SparsePart s;
  const std::string name = tensor("sparse_counts");
  std::vector<int32_t> counts;
  const StDtype dtype = r.has(name) ? r.raw(name).dtype : StDtype::kI32;
  if (dtype == StDtype::kU8) {
    const auto c = read_tensor<uint8_t>(r, name, StDtype::kU8, {rows});
    counts.assign(c.begin(), c.end());
  } else if (dtype == StDtype::kU16) {
    const auto c = read_tensor<uint16_t>(r, name, StDtype::kU16, {rows});
    counts.assign(c.begin(), c.end());
  } else {
    counts = read_tensor<int32_t>(r, name, StDtype::kI32, {rows});
  }
  s.row_ptr.assign(1, 0);
  for (int64_t i = 0; i < rows; ++i) {
    const int32_t c = counts[static_cast<size_t>(i)];
    if (c < 0 || c > cols)
      fail(ErrorKind::kBadInput, "{}: tensor {}: row {} has {} entries ({} columns)", r.path(),
           tensor("sparse_counts"), i, c, cols);
    s.row_ptr.push_back(s.row_ptr.back() + c);
  }
  const int64_t nnz = s.row_ptr.back();
  if (quant::sparse_column_bits(cols) == 16) {
    const auto c16 = read_tensor<uint16_t>(r, tensor("sparse_cols"), StDtype::kU16, {nnz});
    s.cols.assign(c16.begin(), c16.end());
  } else {
    s.cols = read_tensor<int32_t>(r, tensor("sparse_cols"), StDtype::kI32, {nnz});
  }
  s.values = read_tensor<uint16_t>(r, tensor("sparse_values"), StDtype::kF16, {nnz});
  return s;
}

std::vector<uint8_t> dense_bytes(const Tensor& t, StDtype dtype) {
  std::vector<uint8_t> out;
  if (dtype == StDtype::kF32) {
    out.resize(static_cast<size_t>(t.numel()) * 4);
    if (!out.empty()) std::memcpy(out.data(), t.data(), out.size());
    return out;
  }
  std::vector<uint16_t> h(static_cast<size_t>(t.numel()));
  for (size_t k = 0; k < h.size(); ++k)
    h[k] = dtype == StDtype::kF16 ? float_to_half(t.data()[k]) : float_to_bf16(t.data()[k]);
  out.resize(h.size() * 2);
  if (!out.empty()) std::memcpy(out.data(), h.data(), out.size());
  return out;
}

// Integer field of a layer's JSON entry.
int64_t json_int(const Json& entry, const char* key, const std::string& path,
                 const std::string& layer) {
  if (!entry.contains(key) || !entry[key].is_number_integer())
    fail(ErrorKind::kBadInput, "{}: metadata of layer {} lacks integer field {}", path, layer, key);
  return entry[key].get<int64_t>();
}
bool json_bool(const Json& entry, const char* key, const std::string& path,
               const std::string& layer) {
  if (!entry.contains(key) || !entry[key].is_boolean())
    fail(ErrorKind::kBadInput, "{}: metadata of layer {} lacks boolean field {}", path, layer, key);
  return entry[key].get<bool>();
}

}  // namespace

double bits_per_weight(const PackedModel& model) {
  double bits = 0.0, weights = 0.0;
  for (const auto& [name, l] : model.lut_layers) {
    bits += static_cast<double>(quant::stored_bits(l));
    weights += static_cast<double>(l.rows) * static_cast<double>(l.cols);
  }
  for (const auto& [name, l] : model.uniform_layers) {
    bits += static_cast<double>(quant::stored_bits(l));
    weights += static_cast<double>(l.rows) * static_cast<double>(l.cols);
  }
  for (const auto& [name, l] : model.column_lut_layers) {
    bits += static_cast<double>(quant::stored_bits(l));
    weights += static_cast<double>(l.rows) * static_cast<double>(l.cols);
  }
  for (const auto& [name, l] : model.residual_layers) {
    bits += static_cast<double>(quant::stored_bits(l));
    weights += static_cast<double>(l.rows) * static_cast<double>(l.cols);
  }
  return weights > 0.0 ? bits / weights : 0.0;
}

void write_packed_model(const std::string& path, const PackedModel& model) {
  if (model.dense_dtype != StDtype::kF32 && model.dense_dtype != StDtype::kF16 &&
      model.dense_dtype != StDtype::kBF16)
    fail(ErrorKind::kBadInput, "{}: dense tensors cannot be stored as {}", path,
         st_dtype_name(model.dense_dtype));
  for (const auto& [key, value] : model.metadata)
    if (key.rfind("skim.", 0) == 0)
      fail(ErrorKind::kBadInput, "{}: metadata key {} uses the reserved prefix skim.", path, key);
  SafetensorsWriter w;
  Json layers = Json::object();
  Json crc = Json::object();
  for (const auto& [name, l] : model.lut_layers) {
    check_packed_layer(l, name, path);
    const bool q8 = !l.codebook_q8.empty();
    layers[name] = {{"kind", "lut"},
                    {"rows", l.rows},
                    {"cols", l.cols},
                    {"alpha", !l.alpha.empty()},
                    {"entries", !q8    ? "f16"
                                : l.d8 ? "d8"
                                       : "q8"},
                    {"sparse", !l.sparse.empty()}};
    // A grid row: its width byte carries kGridRow and its codes (0, 1, 2, ...) are not stored.
    std::vector<uint8_t> widths = l.bits, codes;
    codes.reserve(l.codebook_q8.size());
    for (int64_t i = 0, k = 0; i < l.rows; ++i) {
      const int64_t n = int64_t{1} << l.bits[i];
      const bool grid = !l.grid_rows.empty() && l.grid_rows[i] != 0;
      if (grid) widths[i] |= quant::kGridRow;
      if (q8 && !grid)
        codes.insert(codes.end(), l.codebook_q8.begin() + k, l.codebook_q8.begin() + k + n);
      k += n;
    }
    add_tensor(w, crc, lut_tensor(name, "bits"), StDtype::kU8, {l.rows}, widths);
    if (q8) {
      add_tensor(w, crc, lut_tensor(name, "codes"), StDtype::kU8,
                 {static_cast<int64_t>(codes.size())}, codes);
      add_tensor(w, crc, lut_tensor(name, "grid"), StDtype::kF16, {l.rows, 2}, l.codebook_q8_grid);
    } else {
      add_tensor(w, crc, lut_tensor(name, "codebook"), StDtype::kF16,
                 {static_cast<int64_t>(l.codebook.size())}, l.codebook);
    }
    add_tensor(w, crc, lut_tensor(name, "labels"), StDtype::kU8,
               {static_cast<int64_t>(l.labels.size())}, l.labels);
    if (!l.alpha.empty())
      add_tensor(w, crc, lut_tensor(name, "alpha"), StDtype::kF16, {l.cols}, l.alpha);
    if (!l.sparse.empty())
      write_sparse(
          w, crc, name, [&layer = name](const char* part) { return lut_tensor(layer, part); },
          l.sparse, l.rows, l.cols);
  }
  for (const auto& [name, l] : model.uniform_layers) {
    if (layers.contains(name))
      fail(ErrorKind::kBadInput, "{}: layer {} is both a LUT and a uniform layer", path, name);
    check_packed_layer(l, name, path);
    layers[name] = {{"kind", "uniform"},
                    {"rows", l.rows},
                    {"cols", l.cols},
                    {"bits", l.bits},
                    {"group_size", l.group_size},
                    {"perm", !l.perm.empty()},
                    {"group_bits", !l.group_bits.empty()}};
    add_tensor(w, crc, uq_tensor(name, "codes"), StDtype::kU8,
               {l.rows, quant::uniform_row_bytes(l)}, l.codes);
    if (!l.group_bits.empty())
      add_tensor(w, crc, uq_tensor(name, "group_bits"), StDtype::kU8, {l.groups()}, l.group_bits);
    add_tensor(w, crc, uq_tensor(name, "scale"), StDtype::kF16, {l.rows, l.groups()}, l.scale);
    add_tensor(w, crc, uq_tensor(name, "zero"), StDtype::kF16, {l.rows, l.groups()}, l.zero);
    if (!l.perm.empty())
      add_tensor(w, crc, uq_tensor(name, "perm"), StDtype::kI32, {l.cols}, l.perm);
  }
  for (const auto& [name, l] : model.column_lut_layers) {
    if (layers.contains(name))
      fail(ErrorKind::kBadInput, "{}: layer {} is stored twice", path, name);
    check_packed_layer(l, name, path);
    layers[name] = {
        {"kind", "column_lut"}, {"rows", l.rows}, {"cols", l.cols}, {"sparse", !l.sparse.empty()}};
    add_tensor(w, crc, clut_tensor(name, "bits"), StDtype::kU8, {l.cols}, l.bits);
    add_tensor(w, crc, clut_tensor(name, "codebook"), StDtype::kF16,
               {static_cast<int64_t>(l.codebook.size())}, l.codebook);
    add_tensor(w, crc, clut_tensor(name, "codes"), StDtype::kU8,
               {l.rows, quant::column_lut_offsets(l.bits).row_bytes}, l.codes);
    if (!l.sparse.empty())
      write_sparse(
          w, crc, name, [&layer = name](const char* part) { return clut_tensor(layer, part); },
          l.sparse, l.rows, l.cols);
  }
  for (const auto& [name, l] : model.residual_layers) {
    if (layers.contains(name))
      fail(ErrorKind::kBadInput, "{}: layer {} is both a linear and a residual", path, name);
    check_packed_layer(l, name, path);
    layers[name] = {{"kind", "residual"}, {"rows", l.rows}, {"cols", l.cols}};
    add_tensor(w, crc, qdec_tensor(name, "codes"), StDtype::kU8, {l.cols, l.column_bytes()},
               l.codes);
    add_tensor(w, crc, qdec_tensor(name, "scale"), StDtype::kF16, {l.rows}, l.scale);
  }
  for (const auto& [name, t] : model.dense) {
    if (crc.contains(name))
      fail(ErrorKind::kBadInput, "{}: dense tensor {} clashes with a layer tensor", path, name);
    add_tensor(w, crc, name, model.dense_dtype, t.shape(), dense_bytes(t, model.dense_dtype));
  }
  w.set_metadata(kKeyFormat, kPackedFormatName);
  w.set_metadata(kKeyVersion, std::to_string(kPackedFormatVersion));
  w.set_metadata(kKeyMethod, model.method);
  w.set_metadata(kKeyLayers, layers.dump());
  w.set_metadata(kKeyCrc, crc.dump());
  w.set_metadata(kKeyBits, fmt::format("{:.6f}", bits_per_weight(model)));
  for (const auto& [key, value] : model.metadata) w.set_metadata(key, value);
  w.write(path);
}

PackedModel read_packed_model(const std::string& path) {
  const std::unique_ptr<SafetensorsReader> r = SafetensorsReader::open(path);
  const std::map<std::string, std::string>& meta = r->metadata();
  auto get = [&](const char* key) -> const std::string& {
    const auto it = meta.find(key);
    if (it == meta.end())
      fail(ErrorKind::kBadInput, "{}: not a packed model file (metadata key {} missing)", path,
           key);
    return it->second;
  };
  if (get(kKeyFormat) != kPackedFormatName)
    fail(ErrorKind::kBadInput, "{}: format is {}, expected {}", path, get(kKeyFormat),
         kPackedFormatName);
  const std::string version = get(kKeyVersion);
  bool known_version = false;
  for (int v = kPackedFormatOldestVersion; v <= kPackedFormatVersion; ++v)
    known_version = known_version || version == std::to_string(v);
  if (!known_version)
    fail(ErrorKind::kBadInput,
         "{}: packed format version {} is not supported (this build reads {} to {})", path, version,
         kPackedFormatOldestVersion, kPackedFormatVersion);
  const bool has_grid_rows = std::stoi(version) >= 6;
  Json layers, crc;
  try {
    layers = Json::parse(get(kKeyLayers));
    crc = Json::parse(get(kKeyCrc));
  } catch (const Json::exception& e) {
    fail(ErrorKind::kBadInput, "{}: layer or checksum metadata is not valid JSON: {}", path,
         e.what());
  }
  if (!layers.is_object() || !crc.is_object())
    fail(ErrorKind::kBadInput, "{}: layer or checksum metadata is not a JSON object", path);

  // Every tensor must carry a matching checksum, and every checksum a tensor.
  for (const std::string& name : r->names()) {
    if (!crc.contains(name) || !crc[name].is_string())
      fail(ErrorKind::kBadInput, "{}: tensor {} has no checksum in the metadata", path, name);
    const std::string got = hex32(crc32(r->raw(name).bytes));
    if (crc[name].get<std::string>() != got)
      fail(ErrorKind::kBadInput, "{}: tensor {} is corrupt (CRC-32 {} expected {})", path, name,
           got, crc[name].get<std::string>());
  }
  for (const auto& [name, value] : crc.items())
    if (!r->has(name))
      fail(ErrorKind::kBadInput, "{}: tensor {} is listed but missing", path, name);

  PackedModel model;
  model.method = get(kKeyMethod);
  std::map<std::string, bool> layer_tensor;  // names that belong to a layer
  for (const auto& [name, entry] : layers.items()) {
    if (!entry.is_object() || !entry.contains("kind") || !entry["kind"].is_string())
      fail(ErrorKind::kBadInput, "{}: metadata of layer {} has no kind", path, name);
    const std::string kind = entry["kind"].get<std::string>();
    const int64_t rows = json_int(entry, "rows", path, name);
    const int64_t cols = json_int(entry, "cols", path, name);
    if (rows <= 0 || cols <= 0 || rows > (int64_t{1} << 31) || cols > (int64_t{1} << 31))
      fail(ErrorKind::kBadInput, "{}: layer {} has shape [{}, {}]", path, name, rows, cols);
    if (kind == "lut") {
      PackedLutLayer l;
      l.rows = rows;
      l.cols = cols;
      l.bits = read_tensor<uint8_t>(*r, lut_tensor(name, "bits"), StDtype::kU8, {rows});
      std::string entries = "f16";  // version 1 has no "entries"
      if (entry.contains("entries")) {
        if (!entry["entries"].is_string())
          fail(ErrorKind::kBadInput, "{}: layer {}: \"entries\" is not a string", path, name);
        entries = entry["entries"].get<std::string>();
      }
      int64_t grid_codes = 0;  // codes of grid rows: implied, not stored
      const bool coded = entries == "q8" || (entries == "d8" && has_grid_rows);
      if (coded && has_grid_rows && std::any_of(l.bits.begin(), l.bits.end(), [](uint8_t b) {
            return quant::choice_is_grid(b);
          })) {
        l.grid_rows.resize(l.bits.size());
        for (size_t i = 0; i < l.bits.size(); ++i) {
          l.grid_rows[i] = quant::choice_is_grid(l.bits[i]) ? 1 : 0;
          l.bits[i] = static_cast<uint8_t>(l.bits[i] & ~quant::kGridRow);  // no other flag
          if (l.grid_rows[i] != 0 && l.bits[i] >= 1 && l.bits[i] <= 8)
            grid_codes += int64_t{1} << l.bits[i];
        }
      }
      for (size_t i = 0; i < l.bits.size(); ++i)
        if (l.bits[i] < 1 || l.bits[i] > 8)
          fail(ErrorKind::kBadInput, "{}: tensor {}: row {} has {} bits (1..8 allowed)", path,
               lut_tensor(name, "bits"), i, l.bits[i]);
      const quant::PackedLutOffsets o = quant::packed_lut_offsets(cols, l.bits);
      std::vector<const char*> parts = {"bits", "labels"};
      if (coded) {
        l.d8 = entries == "d8";
        const auto kind = l.d8 ? quant::LutEntries::kD8 : quant::LutEntries::kQ8;
        const auto stored = read_tensor<uint8_t>(*r, lut_tensor(name, "codes"), StDtype::kU8,
                                                 {o.codebook.back() - grid_codes});
        l.codebook_q8.resize(static_cast<size_t>(o.codebook.back()));
        for (int64_t i = 0, k = 0; i < rows; ++i)
          for (int64_t c = o.codebook[i]; c < o.codebook[i + 1]; ++c)
            l.codebook_q8[c] = !l.grid_rows.empty() && l.grid_rows[i] != 0
                                   ? quant::grid_row_code(kind, c - o.codebook[i])
                                   : stored[k++];
        l.codebook_q8_grid =
            read_tensor<uint16_t>(*r, lut_tensor(name, "grid"), StDtype::kF16, {rows, 2});
        l.codebook.resize(l.codebook_q8.size());
        for (int64_t i = 0; i < rows; ++i)
          quant::decode_lut_row(kind, l.codebook_q8_grid[2 * i], l.codebook_q8_grid[2 * i + 1],
                                l.codebook_q8.data() + o.codebook[i],
                                o.codebook[i + 1] - o.codebook[i],
                                l.codebook.data() + o.codebook[i]);
        parts.insert(parts.end(), {"codes", "grid"});
      } else if (entries == "f16") {
        l.codebook = read_tensor<uint16_t>(*r, lut_tensor(name, "codebook"), StDtype::kF16,
                                           {o.codebook.back()});
        parts.push_back("codebook");
      } else {
        fail(ErrorKind::kBadInput, "{}: layer {}: LUT entries \"{}\" (f16, q8 or d8 expected)",
             path, name, entries);
      }
      l.labels =
          read_tensor<uint8_t>(*r, lut_tensor(name, "labels"), StDtype::kU8, {o.label.back()});
      if (json_bool(entry, "alpha", path, name))
        l.alpha = read_tensor<uint16_t>(*r, lut_tensor(name, "alpha"), StDtype::kF16, {cols});
      if (entry.contains("sparse") && json_bool(entry, "sparse", path, name)) {
        l.sparse = read_sparse(
            *r, [&layer = name](const char* part) { return lut_tensor(layer, part); }, rows, cols);
        for (const char* part : {"sparse_counts", "sparse_cols", "sparse_values"})
          parts.push_back(part);
      }
      check_packed_layer(l, name, path);
      for (const char* part : parts) layer_tensor[lut_tensor(name, part)] = true;
      if (!l.alpha.empty()) layer_tensor[lut_tensor(name, "alpha")] = true;
      model.lut_layers.emplace(name, std::move(l));
    } else if (kind == "uniform") {
      PackedUniformLayer l;
      l.rows = rows;
      l.cols = cols;
      const int64_t bits = json_int(entry, "bits", path, name);
      l.group_size = json_int(entry, "group_size", path, name);
      if (bits < 1 || bits > 8 || l.group_size < 0)
        fail(ErrorKind::kBadInput, "{}: layer {}: bad bits {} or group size {}", path, name, bits,
             l.group_size);
      l.bits = static_cast<int>(bits);
      // Version 3 and older have no group widths.
      if (entry.contains("group_bits") && json_bool(entry, "group_bits", path, name)) {
        l.group_bits =
            read_tensor<uint8_t>(*r, uq_tensor(name, "group_bits"), StDtype::kU8, {l.groups()});
      }
      l.codes = read_tensor<uint8_t>(*r, uq_tensor(name, "codes"), StDtype::kU8,
                                     {rows, quant::uniform_row_bytes(l)});
      l.scale =
          read_tensor<uint16_t>(*r, uq_tensor(name, "scale"), StDtype::kF16, {rows, l.groups()});
      l.zero =
          read_tensor<uint16_t>(*r, uq_tensor(name, "zero"), StDtype::kF16, {rows, l.groups()});
      if (json_bool(entry, "perm", path, name))
        l.perm = read_tensor<int32_t>(*r, uq_tensor(name, "perm"), StDtype::kI32, {cols});
      check_packed_layer(l, name, path);
      for (const char* part : {"codes", "scale", "zero"})
        layer_tensor[uq_tensor(name, part)] = true;
      if (!l.perm.empty()) layer_tensor[uq_tensor(name, "perm")] = true;
      if (!l.group_bits.empty()) layer_tensor[uq_tensor(name, "group_bits")] = true;
      model.uniform_layers.emplace(name, std::move(l));
    } else if (kind == "column_lut") {
      PackedColumnLutLayer l;
      l.rows = rows;
      l.cols = cols;
      l.bits = read_tensor<uint8_t>(*r, clut_tensor(name, "bits"), StDtype::kU8, {cols});
      for (size_t j = 0; j < l.bits.size(); ++j)
        if (l.bits[j] < 1 || l.bits[j] > 8)
          fail(ErrorKind::kBadInput, "{}: tensor {}: column {} has {} bits (1..8 allowed)", path,
               clut_tensor(name, "bits"), j, l.bits[j]);
      const quant::ColumnLutOffsets o = quant::column_lut_offsets(l.bits);
      l.codebook = read_tensor<uint16_t>(*r, clut_tensor(name, "codebook"), StDtype::kF16,
                                         {o.codebook.back()});
      l.codes =
          read_tensor<uint8_t>(*r, clut_tensor(name, "codes"), StDtype::kU8, {rows, o.row_bytes});
      std::vector<const char*> parts = {"bits", "codebook", "codes"};
      if (json_bool(entry, "sparse", path, name)) {
        l.sparse = read_sparse(
            *r, [&layer = name](const char* part) { return clut_tensor(layer, part); }, rows, cols);
        for (const char* part : {"sparse_counts", "sparse_cols", "sparse_values"})
          parts.push_back(part);
      }
      check_packed_layer(l, name, path);
      for (const char* part : parts) layer_tensor[clut_tensor(name, part)] = true;
      model.column_lut_layers.emplace(name, std::move(l));
    } else if (kind == "residual") {
      quant::ResidualLayer l;
      l.rows = rows;
      l.cols = cols;
      l.codes = read_tensor<uint8_t>(*r, qdec_tensor(name, "codes"), StDtype::kU8,
                                     {cols, l.column_bytes()});
      l.scale = read_tensor<uint16_t>(*r, qdec_tensor(name, "scale"), StDtype::kF16, {rows});
      check_packed_layer(l, name, path);
      for (const char* part : {"codes", "scale"}) layer_tensor[qdec_tensor(name, part)] = true;
      model.residual_layers.emplace(name, std::move(l));
    } else {
      fail(ErrorKind::kBadInput, "{}: layer {} has unknown kind {}", path, name, kind);
    }
  }
  bool first_dense = true;
  for (const std::string& name : r->names()) {
    if (layer_tensor.count(name)) continue;
    const StTensorView v = r->raw(name);
    if (v.dtype != StDtype::kF32 && v.dtype != StDtype::kF16 && v.dtype != StDtype::kBF16)
      fail(ErrorKind::kBadInput, "{}: tensor {} belongs to no layer and is not a float tensor ({})",
           path, name, st_dtype_name(v.dtype));
    if (first_dense) model.dense_dtype = v.dtype;
    first_dense = false;
    model.dense.emplace(name, r->load_f32(name));
  }
  for (const auto& [key, value] : meta)
    if (key.rfind("skim.", 0) != 0) model.metadata[key] = value;
  return model;
}

}  // namespace skim::io
