// The packed model file: bit-exact round trips, the layout of docs/FORMAT.md checked through the
// plain safetensors reader, the bits-per-weight count, and every bad-file case.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "io/packed_format.h"
#include "io/safetensors.h"
#include "src/core/error.h"
#include "src/core/half.h"
#include "tests/quant/random_lut_layer.h"

namespace skim::io {
namespace {

namespace fs = std::filesystem;
using quant::PackedColumnLutLayer;
using quant::PackedLutLayer;
using quant::PackedUniformLayer;

PackedLutLayer lut_layer(int64_t rows, int64_t cols, bool alpha, std::mt19937& rng) {
  PackedLutLayer l;
  l.rows = rows;
  l.cols = cols;
  int64_t entries = 0, bytes = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const int b = 1 + static_cast<int>(rng() % 8);
    l.bits.push_back(static_cast<uint8_t>(b));
    entries += int64_t{1} << b;
    bytes += (cols * b + 7) / 8;
  }
  for (int64_t k = 0; k < entries; ++k)
    l.codebook.push_back(float_to_half(std::normal_distribution<float>(0, 0.05f)(rng)));
  for (int64_t k = 0; k < bytes; ++k) l.labels.push_back(static_cast<uint8_t>(rng()));
  if (alpha)
    for (int64_t j = 0; j < cols; ++j)
      l.alpha.push_back(float_to_half(std::uniform_real_distribution<float>(0.5f, 2.0f)(rng)));
  return l;
}

// The same with 8-bit LUT entries: random codes on a random grid per row, decoded.
PackedLutLayer lut_layer_q8(int64_t rows, int64_t cols, std::mt19937& rng) {
  PackedLutLayer l = lut_layer(rows, cols, true, rng);
  const quant::PackedLutOffsets o = quant::packed_lut_offsets(cols, l.bits);
  for (int64_t i = 0; i < rows; ++i) {
    const uint16_t lo = float_to_half(std::normal_distribution<float>(-0.1f, 0.02f)(rng));
    const uint16_t step = float_to_half(std::uniform_real_distribution<float>(1e-4f, 1e-3f)(rng));
    l.codebook_q8_grid.insert(l.codebook_q8_grid.end(), {lo, step});
    for (int64_t k = o.codebook[i]; k < o.codebook[i + 1]; ++k) {
      const auto c = static_cast<uint8_t>(rng());
      l.codebook_q8.push_back(c);
      l.codebook[k] = quant::lut_q8_entry(lo, step, c);
    }
  }
  return l;
}

// 8-bit entries with every third row (1, 4, 7, ...) a grid row: its codes 0, 1, 2, ... implied.
PackedLutLayer lut_layer_q8_grid(int64_t rows, int64_t cols, std::mt19937& rng) {
  PackedLutLayer l = lut_layer_q8(rows, cols, rng);
  const quant::PackedLutOffsets o = quant::packed_lut_offsets(cols, l.bits);
  l.grid_rows.assign(static_cast<size_t>(rows), 0);
  for (int64_t i = 1; i < rows; i += 3) {
    l.grid_rows[i] = 1;
    for (int64_t k = o.codebook[i]; k < o.codebook[i + 1]; ++k) {
      l.codebook_q8[k] = static_cast<uint8_t>(k - o.codebook[i]);
      l.codebook[k] = quant::lut_q8_entry(l.codebook_q8_grid[2 * i], l.codebook_q8_grid[2 * i + 1],
                                          l.codebook_q8[k]);
    }
  }
  return l;
}

// d8 entries: random increments on a random grid per row, decoded; rows 2, 5, 8 grid rows.
PackedLutLayer lut_layer_d8(int64_t rows, int64_t cols, std::mt19937& rng) {
  PackedLutLayer l = lut_layer_q8(rows, cols, rng);
  l.d8 = true;
  l.grid_rows.assign(static_cast<size_t>(rows), 0);
  const quant::PackedLutOffsets o = quant::packed_lut_offsets(cols, l.bits);
  for (int64_t i = 0; i < rows; ++i) {
    l.grid_rows[i] = i % 3 == 2;
    for (int64_t k = o.codebook[i]; k < o.codebook[i + 1]; ++k)
      l.codebook_q8[k] = l.grid_rows[i]
                             ? quant::grid_row_code(quant::LutEntries::kD8, k - o.codebook[i])
                             : static_cast<uint8_t>(rng() % 40);
    quant::decode_lut_row(quant::LutEntries::kD8, l.codebook_q8_grid[2 * i],
                          l.codebook_q8_grid[2 * i + 1], l.codebook_q8.data() + o.codebook[i],
                          o.codebook[i + 1] - o.codebook[i], l.codebook.data() + o.codebook[i]);
  }
  return l;
}

// The same with a sparse part (row i holds i % 4 entries, tests/quant/random_lut_layer.h).
PackedLutLayer lut_layer_sparse(int64_t rows, int64_t cols, std::mt19937& rng) {
  PackedLutLayer l = lut_layer(rows, cols, true, rng);
  l.sparse = quant::testing::random_sparse_part(rows, cols, rng());
  return l;
}

PackedUniformLayer uniform_layer(int64_t rows, int64_t cols, int bits, int64_t gs, bool perm,
                                 std::mt19937& rng) {
  PackedUniformLayer l;
  l.rows = rows;
  l.cols = cols;
  l.bits = bits;
  l.group_size = gs;
  for (int64_t k = 0; k < rows * l.groups(); ++k) {
    l.scale.push_back(float_to_half(std::uniform_real_distribution<float>(1e-3f, 1e-2f)(rng)));
    l.zero.push_back(float_to_half(static_cast<float>(rng() % (1u << bits))));
  }
  for (int64_t k = 0; k < rows * ((cols * bits + 7) / 8); ++k)
    l.codes.push_back(static_cast<uint8_t>(rng()));
  if (perm) {
    for (int32_t j = 0; j < cols; ++j) l.perm.push_back(j);
    std::shuffle(l.perm.begin(), l.perm.end(), rng);
  }
  return l;
}

// Group widths: groups of 16, 16 and 8 columns at 2, 4 and 3 bits.
PackedUniformLayer uniform_layer_widths(int64_t rows, int64_t cols, std::mt19937& rng) {
  PackedUniformLayer l = uniform_layer(rows, cols, 3, 16, false, rng);
  l.group_bits = {2, 4, 3};
  for (int64_t k = 0; k < rows * l.groups(); ++k)
    l.zero[k] = float_to_half(static_cast<float>(rng() % (1u << l.group_bits[k % 3])));
  l.codes.resize(static_cast<size_t>(rows * (16 * 2 + 16 * 4 + 8 * 3) / 8));
  for (auto& c : l.codes) c = static_cast<uint8_t>(rng());
  return l;
}

// A QDEC residual of 7 rows (odd: each channel's last high nibble is padding, 0).
quant::ResidualLayer residual_layer(int64_t rows, int64_t cols, std::mt19937& rng) {
  quant::ResidualLayer l;
  l.rows = rows;
  l.cols = cols;
  for (int64_t i = 0; i < rows; ++i)
    l.scale.push_back(float_to_half(0.001f * static_cast<float>(1 + rng() % 100)));
  l.codes.resize(static_cast<size_t>(cols * l.column_bytes()));
  for (auto& c : l.codes) c = static_cast<uint8_t>(rng());
  for (int64_t j = 0; j < cols; ++j) l.codes[(j + 1) * l.column_bytes() - 1] &= 15;
  return l;
}

// A CLAQ layer: columns at 2, 3 and 5 bits (codes straddling bytes) and reserved weights.
PackedColumnLutLayer column_lut_layer(int64_t rows, int64_t cols, std::mt19937& rng) {
  PackedColumnLutLayer l;
  l.rows = rows;
  l.cols = cols;
  for (int64_t j = 0; j < cols; ++j)
    l.bits.push_back(static_cast<uint8_t>(j % 3 == 0 ? 5 : 2 + j % 2));
  const quant::ColumnLutOffsets o = quant::column_lut_offsets(l.bits);
  for (int64_t k = 0; k < o.codebook.back(); ++k)
    l.codebook.push_back(
        float_to_half(0.01f * static_cast<float>(static_cast<int>(rng() % 200) - 100)));
  l.codes.resize(static_cast<size_t>(rows * o.row_bytes));
  for (auto& c : l.codes) c = static_cast<uint8_t>(rng());
  l.sparse.row_ptr = {0};
  for (int64_t i = 0; i < rows; ++i) {
    if (i % 2 == 0) {
      l.sparse.cols.push_back(static_cast<int32_t>(i % cols));
      l.sparse.values.push_back(float_to_half(0.5f));
    }
    l.sparse.row_ptr.push_back(static_cast<int64_t>(l.sparse.cols.size()));
  }
  return l;
}

PackedModel sample_model() {
  std::mt19937 rng(7);
  PackedModel m;
  m.method = "skim";
  m.lut_layers["model.layers.0.self_attn.q_proj"] = lut_layer(9, 37, true, rng);
  m.lut_layers["model.layers.0.mlp.down_proj"] = lut_layer(5, 64, false, rng);
  m.lut_layers["model.layers.0.mlp.gate_proj"] = lut_layer_q8(7, 40, rng);
  m.lut_layers["model.layers.0.mlp.up_proj"] = lut_layer_sparse(8, 33, rng);
  m.lut_layers["model.layers.0.self_attn.v_proj"] = lut_layer_q8_grid(10, 24, rng);
  m.lut_layers["model.layers.1.self_attn.q_proj"] = lut_layer_d8(9, 16, rng);
  // More than 65536 columns: the sparse part's columns are stored in 32 bits.
  m.lut_layers["model.layers.0.self_attn.k_proj"] = lut_layer_sparse(3, 70000, rng);
  m.uniform_layers["model.layers.1.self_attn.o_proj"] = uniform_layer(6, 45, 3, 16, true, rng);
  m.uniform_layers["model.layers.1.mlp.up_proj"] = uniform_layer(4, 20, 4, 0, false, rng);
  m.uniform_layers["model.layers.1.mlp.gate_proj"] = uniform_layer_widths(5, 40, rng);
  m.residual_layers["model.layers.2.self_attn.q_proj"] = residual_layer(7, 10, rng);
  m.column_lut_layers["model.layers.2.mlp.down_proj"] = column_lut_layer(6, 11, rng);
  Tensor emb({3, 4});
  for (int64_t k = 0; k < emb.numel(); ++k) emb.data()[k] = 0.125f * static_cast<float>(k - 5);
  m.dense["model.embed_tokens.weight"] = emb;
  m.dense["model.norm.weight"] = Tensor({4}, {1.0f, 0.5f, -2.0f, 0.25f});
  m.metadata["model"] = "test";
  return m;
}

class PackedFormat : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "skim_packed_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

void expect_same(const PackedModel& a, const PackedModel& b) {
  EXPECT_EQ(a.method, b.method);
  ASSERT_EQ(a.lut_layers.size(), b.lut_layers.size());
  for (const auto& [name, l] : a.lut_layers) {
    ASSERT_TRUE(b.lut_layers.count(name)) << name;
    const PackedLutLayer& r = b.lut_layers.at(name);
    EXPECT_EQ(l.rows, r.rows);
    EXPECT_EQ(l.cols, r.cols);
    EXPECT_EQ(l.bits, r.bits);
    EXPECT_EQ(l.codebook, r.codebook);
    EXPECT_EQ(l.codebook_q8, r.codebook_q8);
    EXPECT_EQ(l.codebook_q8_grid, r.codebook_q8_grid);
    EXPECT_EQ(l.grid_rows, r.grid_rows);
    EXPECT_EQ(l.d8, r.d8);
    EXPECT_EQ(l.labels, r.labels);
    EXPECT_EQ(l.alpha, r.alpha);
    EXPECT_EQ(l.sparse.row_ptr, r.sparse.row_ptr);
    EXPECT_EQ(l.sparse.cols, r.sparse.cols);
    EXPECT_EQ(l.sparse.values, r.sparse.values);
  }
  ASSERT_EQ(a.uniform_layers.size(), b.uniform_layers.size());
  for (const auto& [name, l] : a.uniform_layers) {
    ASSERT_TRUE(b.uniform_layers.count(name)) << name;
    const PackedUniformLayer& r = b.uniform_layers.at(name);
    EXPECT_EQ(l.rows, r.rows);
    EXPECT_EQ(l.cols, r.cols);
    EXPECT_EQ(l.bits, r.bits);
    EXPECT_EQ(l.group_size, r.group_size);
    EXPECT_EQ(l.scale, r.scale);
    EXPECT_EQ(l.zero, r.zero);
    EXPECT_EQ(l.perm, r.perm);
    EXPECT_EQ(l.group_bits, r.group_bits);
    EXPECT_EQ(l.codes, r.codes);
  }
  ASSERT_EQ(a.column_lut_layers.size(), b.column_lut_layers.size());
  for (const auto& [name, l] : a.column_lut_layers) {
    ASSERT_TRUE(b.column_lut_layers.count(name)) << name;
    const PackedColumnLutLayer& r = b.column_lut_layers.at(name);
    EXPECT_EQ(l.rows, r.rows);
    EXPECT_EQ(l.cols, r.cols);
    EXPECT_EQ(l.bits, r.bits);
    EXPECT_EQ(l.codebook, r.codebook);
    EXPECT_EQ(l.codes, r.codes);
    EXPECT_EQ(l.sparse.row_ptr, r.sparse.row_ptr);
    EXPECT_EQ(l.sparse.cols, r.sparse.cols);
    EXPECT_EQ(l.sparse.values, r.sparse.values);
  }
  ASSERT_EQ(a.residual_layers.size(), b.residual_layers.size());
  for (const auto& [name, l] : a.residual_layers) {
    ASSERT_TRUE(b.residual_layers.count(name)) << name;
    const quant::ResidualLayer& r = b.residual_layers.at(name);
    EXPECT_EQ(l.rows, r.rows);
    EXPECT_EQ(l.cols, r.cols);
    EXPECT_EQ(l.scale, r.scale);
    EXPECT_EQ(l.codes, r.codes);
  }
  ASSERT_EQ(a.dense.size(), b.dense.size());
  for (const auto& [name, t] : a.dense) {
    ASSERT_TRUE(b.dense.count(name)) << name;
    EXPECT_EQ(t.shape(), b.dense.at(name).shape());
    EXPECT_TRUE(
        std::equal(t.values().begin(), t.values().end(), b.dense.at(name).values().begin()));
  }
  EXPECT_EQ(a.metadata, b.metadata);
}

// Shapes whose derived sizes would overflow int64 (found by fuzz_checkpoint) are refused before
// any size is computed from them; a group larger than the row is one group.
TEST(PackedLayerChecks, ShapesOutOfRangeAreBadInputNotOverflow) {
  PackedLutLayer lut;
  lut.rows = 2;
  lut.cols = int64_t{1} << 62;
  lut.bits = {8, 8};
  EXPECT_THROW(check_packed_layer(lut, "l", "blob"), Error);
  PackedUniformLayer u;
  u.rows = int64_t{1} << 40;
  u.cols = int64_t{1} << 40;
  u.bits = 4;
  u.perm = {0};
  try {
    check_packed_layer(u, "u", "blob");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
  }
  PackedUniformLayer g;
  g.cols = 64;
  g.group_size = INT64_MAX;
  EXPECT_EQ(g.groups(), 1);
  g.group_size = 16;
  EXPECT_EQ(g.groups(), 4);
}

TEST_F(PackedFormat, RoundTripIsBitExact) {
  for (StDtype dense : {StDtype::kF16, StDtype::kF32, StDtype::kBF16}) {
    PackedModel m = sample_model();
    m.dense_dtype = dense;
    write_packed_model(file("m.safetensors"), m);
    const PackedModel back = read_packed_model(file("m.safetensors"));
    expect_same(m, back);
    EXPECT_EQ(back.dense_dtype, dense);
  }
}

TEST_F(PackedFormat, RowCountsTakeTheNarrowestDtypeThatHoldsThem) {
  // A row of 300 entries needs U16 counts, one of 70000 I32; each reads back the same part.
  std::mt19937 rng(5);
  for (const int64_t wide : {int64_t{300}, int64_t{70000}}) {
    PackedModel m = sample_model();
    PackedLutLayer& l = m.lut_layers.at("model.layers.0.self_attn.k_proj");  // 3 x 70000
    l.sparse = {};
    l.sparse.row_ptr = {0, 0, wide, wide + 1};
    for (int64_t j = 0; j < wide; ++j) l.sparse.cols.push_back(static_cast<int32_t>(j));
    l.sparse.cols.push_back(7);
    l.sparse.values.assign(l.sparse.cols.size(), float_to_half(0.25f));
    write_packed_model(file("w.safetensors"), m);
    const auto r = SafetensorsReader::open(file("w.safetensors"));
    EXPECT_EQ(r->raw("model.layers.0.self_attn.k_proj.lut.sparse_counts").dtype,
              wide <= 65535 ? StDtype::kU16 : StDtype::kI32);
    expect_same(m, read_packed_model(file("w.safetensors")));
  }
}

TEST_F(PackedFormat, LayoutMatchesTheDocumentedFormat) {
  const PackedModel m = sample_model();
  write_packed_model(file("m.safetensors"), m);
  const auto r = SafetensorsReader::open(file("m.safetensors"));
  const auto& meta = r->metadata();
  EXPECT_EQ(meta.at("skim.format"), "skim-packed");
  EXPECT_EQ(meta.at("skim.format_version"), "7");
  EXPECT_EQ(meta.at("skim.method"), "skim");
  EXPECT_EQ(meta.at("model"), "test");
  const auto layers = nlohmann::json::parse(meta.at("skim.layers"));
  EXPECT_EQ(layers["model.layers.0.self_attn.q_proj"]["kind"], "lut");
  EXPECT_EQ(layers["model.layers.1.self_attn.o_proj"]["group_size"], 16);
  const std::string q = "model.layers.0.self_attn.q_proj";
  EXPECT_EQ(r->raw(q + ".lut.bits").dtype, StDtype::kU8);
  EXPECT_EQ(r->raw(q + ".lut.codebook").dtype, StDtype::kF16);
  EXPECT_EQ(r->raw(q + ".lut.labels").dtype, StDtype::kU8);
  EXPECT_EQ(r->raw(q + ".lut.alpha").shape, std::vector<int64_t>{37});
  EXPECT_FALSE(r->has("model.layers.0.mlp.down_proj.lut.alpha"));
  EXPECT_EQ(layers[q]["entries"], "f16");
  // 8-bit entries: codes and (lo, step) stored, no fp16 codebook; the reader's codebook is
  // fp16(lo + step * c), here in double (exact: 11 + 8 significant bits spread over fewer than
  // 53) rounded once to fp32 as the format says.
  const std::string g = "model.layers.0.mlp.gate_proj";
  EXPECT_EQ(layers[g]["entries"], "q8");
  EXPECT_FALSE(r->has(g + ".lut.codebook"));
  EXPECT_EQ(r->raw(g + ".lut.grid").shape, (std::vector<int64_t>{7, 2}));
  EXPECT_EQ(r->raw(g + ".lut.codes").dtype, StDtype::kU8);
  {
    const PackedLutLayer& l = m.lut_layers.at(g);
    const Tensor grid = r->load_f32(g + ".lut.grid");
    const auto codes = r->raw(g + ".lut.codes").bytes;
    const PackedLutLayer back = read_packed_model(file("m.safetensors")).lut_layers.at(g);
    int64_t k = 0;
    for (int64_t i = 0; i < l.rows; ++i)
      for (int64_t e = 0; e < (int64_t{1} << l.bits[i]); ++e, ++k) {
        const double v = static_cast<double>(grid.at(i, 0)) +
                         static_cast<double>(grid.at(i, 1)) * static_cast<double>(codes[k]);
        ASSERT_EQ(back.codebook[k], float_to_half(static_cast<float>(v))) << i << " " << e;
      }
  }
  // Grid rows: the width byte carries 0x80, their codes are left out of .lut.codes, and the
  // stored bits count only what is stored.
  {
    const std::string v = "model.layers.0.self_attn.v_proj";
    const PackedLutLayer& l = m.lut_layers.at(v);
    const auto widths = r->raw(v + ".lut.bits").bytes;
    int64_t codes = 0, label_bytes = 0;
    for (int64_t i = 0; i < l.rows; ++i) {
      EXPECT_EQ(widths[i], l.bits[i] | (i % 3 == 1 ? 0x80 : 0)) << i;
      if (i % 3 != 1) codes += int64_t{1} << l.bits[i];
      label_bytes += (l.cols * l.bits[i] + 7) / 8;
    }
    EXPECT_EQ(r->raw(v + ".lut.codes").shape, std::vector<int64_t>{codes});
    const PackedLutLayer back = read_packed_model(file("m.safetensors")).lut_layers.at(v);
    EXPECT_EQ(quant::stored_bits(back),
              8 * label_bytes + 8 * codes + 32 * l.rows + 8 * l.rows + 16 * l.cols);
  }
  // d8: the codes are increments; entry = fp16(fp32(lo + step * (sum of the row's codes so far)))
  // (the sum exact in double here: small steps and points); grid rows' codes (0, 1, 1, ...) left
  // out.
  {
    const std::string d = "model.layers.1.self_attn.q_proj";
    EXPECT_EQ(layers[d]["entries"], "d8");
    const PackedLutLayer& l = m.lut_layers.at(d);
    const Tensor grid = r->load_f32(d + ".lut.grid");
    const auto codes = r->raw(d + ".lut.codes").bytes;
    const PackedLutLayer back = read_packed_model(file("m.safetensors")).lut_layers.at(d);
    int64_t k = 0, c = 0;
    for (int64_t i = 0; i < l.rows; ++i) {
      int64_t point = 0;
      for (int64_t e = 0; e < (int64_t{1} << l.bits[i]); ++e, ++k) {
        point += i % 3 == 2 ? (e == 0 ? 0 : 1) : codes[c++];
        const double v = static_cast<double>(grid.at(i, 0)) +
                         static_cast<double>(grid.at(i, 1)) * static_cast<double>(point);
        ASSERT_EQ(back.codebook[k], float_to_half(static_cast<float>(v))) << i << " " << e;
      }
    }
    EXPECT_EQ(c, static_cast<int64_t>(codes.size()));
  }
  // Sparse parts: per row its count (U8 when every count is below 256), columns U16 (I32 above
  // 65536 columns), fp16 values.
  const std::string u = "model.layers.0.mlp.up_proj", k = "model.layers.0.self_attn.k_proj";
  EXPECT_EQ(layers[u]["sparse"], true);
  EXPECT_EQ(layers[q]["sparse"], false);
  EXPECT_FALSE(r->has(q + ".lut.sparse_counts"));
  EXPECT_EQ(r->raw(u + ".lut.sparse_counts").dtype, StDtype::kU8);
  EXPECT_EQ(r->raw(u + ".lut.sparse_counts").shape, std::vector<int64_t>{8});
  EXPECT_EQ(r->raw(u + ".lut.sparse_cols").dtype, StDtype::kU16);
  EXPECT_EQ(r->raw(u + ".lut.sparse_values").dtype, StDtype::kF16);
  EXPECT_EQ(r->raw(k + ".lut.sparse_cols").dtype, StDtype::kI32);
  {
    const PackedLutLayer& l = m.lut_layers.at(u);
    const auto counts = r->raw(u + ".lut.sparse_counts").bytes;
    const auto cols = r->raw(u + ".lut.sparse_cols").bytes;
    int64_t n = 0;
    for (int64_t i = 0; i < l.rows; ++i) {
      const int32_t c = counts[i];
      EXPECT_EQ(c, i % 4);
      for (int32_t t = 0; t < c; ++t, ++n)
        EXPECT_EQ(cols[2 * n] | (cols[2 * n + 1] << 8), l.sparse.cols[static_cast<size_t>(n)]);
    }
  }
  const std::string o = "model.layers.1.self_attn.o_proj";
  EXPECT_EQ(r->raw(o + ".uq.codes").shape, (std::vector<int64_t>{6, (45 * 3 + 7) / 8}));
  EXPECT_EQ(r->raw(o + ".uq.scale").shape, (std::vector<int64_t>{6, 3}));
  EXPECT_EQ(r->raw(o + ".uq.perm").dtype, StDtype::kI32);
  EXPECT_EQ(r->raw("model.norm.weight").dtype, StDtype::kF16);
  // A residual: one input channel's 4-bit codes per row of .qdec.codes (ceil(7 / 2) bytes).
  const std::string cl = "model.layers.2.mlp.down_proj";
  EXPECT_EQ(layers[cl]["kind"], "column_lut");
  EXPECT_EQ(layers[cl]["sparse"], true);
  EXPECT_EQ(r->raw(cl + ".clut.bits").shape, std::vector<int64_t>{11});
  EXPECT_EQ(r->raw(cl + ".clut.codebook").shape, std::vector<int64_t>{168});
  EXPECT_EQ(r->raw(cl + ".clut.codes").shape, (std::vector<int64_t>{6, 5}));
  EXPECT_EQ(r->raw(cl + ".clut.sparse_counts").dtype, StDtype::kU8);
  const std::string res = "model.layers.2.self_attn.q_proj";
  EXPECT_EQ(layers[res]["kind"], "residual");
  EXPECT_EQ(r->raw(res + ".qdec.codes").shape, (std::vector<int64_t>{10, 4}));
  EXPECT_EQ(r->raw(res + ".qdec.codes").dtype, StDtype::kU8);
  EXPECT_EQ(r->raw(res + ".qdec.scale").shape, std::vector<int64_t>{7});
  EXPECT_EQ(r->raw(res + ".qdec.scale").dtype, StDtype::kF16);
  // bits per weight, counted independently: labels + 16 per LUT entry (q8: 8 per entry, none
  // for a grid row, + 32 per row) + 8 per row + 16 per alpha; codes + 32 per (row, group) + 32
  // per permutation entry.
  double bits = 0, weights = 0;
  for (const auto& [name, l] : m.lut_layers) {
    const bool q8 = !l.codebook_q8.empty();
    for (size_t i = 0; i < l.bits.size(); ++i) {
      const int b = l.bits[i];
      const bool grid = !l.grid_rows.empty() && l.grid_rows[i] != 0;
      bits += 8.0 * ((l.cols * b + 7) / 8) +
              (q8 ? (grid ? 0.0 : 8.0 * (1 << b)) + 32.0 : 16.0 * (1 << b)) + 8.0;
    }
    bits += 16.0 * static_cast<double>(l.alpha.size());
    if (!l.sparse.empty())
      bits += (l.cols > 65536 ? 48.0 : 32.0) * static_cast<double>(l.sparse.nnz()) + 8.0 * l.rows;
    weights += static_cast<double>(l.rows * l.cols);
  }
  for (const auto& [name, l] : m.uniform_layers) {
    int64_t row_bits = ((l.cols * l.bits + 7) / 8) * 8;
    if (!l.group_bits.empty()) {
      row_bits = 0;
      for (int64_t j = 0; j < l.cols; ++j) row_bits += l.group_bits[j / l.group_size];
    }
    bits += static_cast<double>(l.rows * row_bits + 8 * l.group_bits.size()) +
            32.0 * static_cast<double>(l.rows * l.groups() + static_cast<int64_t>(l.perm.size()));
    weights += static_cast<double>(l.rows * l.cols);
  }
  bits += 4.0 * 7 * 10 + 16.0 * 7;  // the residual: 4 per weight, an fp16 scale per row
  weights += 7.0 * 10;
  // The column-LUT layer: 11 columns at 5, 3, 2, 5, 3, 2, ... bits = 37 bits, 5 bytes a row;
  // 16 per LUT entry (4 x 32 + 3 x 8 + 4 x 4 = 168 entries); 8 per column; the sparse part
  // (3 entries of 16 + 16 bits, 8 per row: U8 counts).
  bits += 6.0 * 5 * 8 + 16.0 * 168 + 8.0 * 11 + 3 * 32.0 + 8.0 * 6;
  weights += 6.0 * 11;
  EXPECT_NEAR(bits_per_weight(m), bits / weights, 1e-12);
  EXPECT_NEAR(std::stod(meta.at("skim.bits_per_weight")), bits / weights, 1e-5);
}

TEST_F(PackedFormat, ChecksumIsZlibCrc32) {
  // One 8-bit row whose labels are the bytes "123456789": the standard CRC-32 check value.
  PackedModel m;
  m.method = "kmeans";
  PackedLutLayer l;
  l.rows = 1;
  l.cols = 9;
  l.bits = {8};
  l.codebook.assign(256, float_to_half(0.5f));
  const std::string digits = "123456789";
  l.labels.assign(digits.begin(), digits.end());
  m.lut_layers["x"] = l;
  write_packed_model(file("c.safetensors"), m);
  const auto r = SafetensorsReader::open(file("c.safetensors"));
  const auto crc = nlohmann::json::parse(r->metadata().at("skim.crc32"));
  EXPECT_EQ(crc["x.lut.labels"], "cbf43926");
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The call must throw kBadInput with a message containing every one of `needles`.
template <typename F>
void expect_bad_input(F&& f, std::initializer_list<std::string> needles) {
  try {
    f();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput) << e.what();
    for (const std::string& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what() << " lacks " << n;
  }
}

TEST_F(PackedFormat, CorruptDataNamesFileAndTensor) {
  write_packed_model(file("m.safetensors"), sample_model());
  std::string bytes = read_all(file("m.safetensors"));
  // The labels of the down_proj layer: find their offset through the plain reader.
  const std::string name = "model.layers.0.mlp.down_proj.lut.labels";
  size_t at = 0;
  {
    const auto r = SafetensorsReader::open(file("m.safetensors"));
    const StTensorView v = r->raw(name);
    const std::string_view whole(bytes);
    at = whole.find(std::string_view(reinterpret_cast<const char*>(v.bytes.data()), 16));
  }
  ASSERT_NE(at, std::string::npos);
  bytes[at + 3] = static_cast<char>(bytes[at + 3] ^ 0x10);
  write_all(file("bad.safetensors"), bytes);
  expect_bad_input([&] { read_packed_model(file("bad.safetensors")); },
                   {file("bad.safetensors"), name, "corrupt"});
}

TEST_F(PackedFormat, TruncatedFile) {
  write_packed_model(file("m.safetensors"), sample_model());
  const std::string bytes = read_all(file("m.safetensors"));
  for (size_t keep : {bytes.size() - 1, bytes.size() / 2, size_t{20}, size_t{4}}) {
    write_all(file("t.safetensors"), bytes.substr(0, keep));
    expect_bad_input([&] { read_packed_model(file("t.safetensors")); }, {file("t.safetensors")});
  }
}

TEST_F(PackedFormat, WrongVersionOrNotAPackedFile) {
  write_packed_model(file("m.safetensors"), sample_model());
  std::string bytes = read_all(file("m.safetensors"));
  const std::string key = "\"skim.format_version\":\"7\"";
  const size_t at = bytes.find(key);
  ASSERT_NE(at, std::string::npos);
  bytes[at + key.size() - 2] = '8';  // same length: the header stays valid safetensors
  write_all(file("v.safetensors"), bytes);
  expect_bad_input([&] { read_packed_model(file("v.safetensors")); },
                   {file("v.safetensors"), "version 8"});

  // Version 1 (fp16 entries only, no "entries" or "sparse" key) is still read.
  PackedModel v1 = sample_model();
  for (const char* layer : {"model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj",
                            "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
                            "model.layers.1.self_attn.q_proj"})
    v1.lut_layers.erase(layer);
  write_packed_model(file("m1.safetensors"), v1);
  bytes = read_all(file("m1.safetensors"));
  bytes[bytes.find(key) + key.size() - 2] = '1';
  write_all(file("v1.safetensors"), bytes);
  expect_same(v1, read_packed_model(file("v1.safetensors")));

  SafetensorsWriter plain;
  plain.add("w", Tensor({2}, {1.0f, 2.0f}));
  plain.write(file("plain.safetensors"));
  expect_bad_input([&] { read_packed_model(file("plain.safetensors")); },
                   {file("plain.safetensors"), "skim.format"});
}

TEST_F(PackedFormat, LayerTensorMissingOrMisshapen) {
  const PackedModel m = sample_model();
  write_packed_model(file("m.safetensors"), m);
  const auto r = SafetensorsReader::open(file("m.safetensors"));
  // Rebuild the file without one tensor, and with one tensor of the wrong shape; the checksum
  // table is kept consistent so the layer checks are what fails.
  auto rewrite = [&](const std::string& out, const std::string& skip, const std::string& reshape) {
    SafetensorsWriter w;
    auto crc = nlohmann::json::parse(r->metadata().at("skim.crc32"));
    for (const auto& [k, v] : r->metadata()) w.set_metadata(k, v);
    for (const std::string& n : r->names()) {
      if (n == skip) {
        crc.erase(n);
        continue;
      }
      const StTensorView v = r->raw(n);
      std::vector<int64_t> shape = v.shape;
      if (n == reshape) shape = {1, static_cast<int64_t>(v.bytes.size() / st_dtype_size(v.dtype))};
      w.add_raw(n, v.dtype, shape, v.bytes);
    }
    w.set_metadata("skim.crc32", crc.dump());
    w.write(out);
  };
  const std::string labels = "model.layers.0.self_attn.q_proj.lut.labels";
  rewrite(file("missing.safetensors"), labels, "");
  expect_bad_input([&] { read_packed_model(file("missing.safetensors")); },
                   {file("missing.safetensors"), labels, "missing"});
  const std::string scale = "model.layers.1.self_attn.o_proj.uq.scale";
  rewrite(file("shape.safetensors"), "", scale);
  expect_bad_input([&] { read_packed_model(file("shape.safetensors")); },
                   {file("shape.safetensors"), scale});
}

TEST_F(PackedFormat, WriterRejectsInconsistentLayersAndLeavesNoFile) {
  PackedModel m = sample_model();
  m.lut_layers.begin()->second.labels.pop_back();
  expect_bad_input([&] { write_packed_model(file("w.safetensors"), m); },
                   {m.lut_layers.begin()->first + ".lut.labels"});
  PackedModel z = sample_model();
  z.uniform_layers.begin()->second.zero[0] = float_to_half(99.0f);
  expect_bad_input([&] { write_packed_model(file("w.safetensors"), z); }, {".uq.zero"});
  PackedModel pad = sample_model();
  pad.residual_layers.begin()->second.codes[3] |= 0x10;  // channel 0's padding nibble
  expect_bad_input([&] { write_packed_model(file("w.safetensors"), pad); }, {".qdec.codes"});
  PackedModel neg = sample_model();
  neg.residual_layers.begin()->second.scale[2] = float_to_half(-0.5f);
  expect_bad_input([&] { write_packed_model(file("w.safetensors"), neg); }, {".qdec.scale"});
  PackedModel wide = sample_model();
  wide.column_lut_layers.begin()->second.bits[0] = 9;
  expect_bad_input([&] { write_packed_model(file("w.safetensors"), wide); }, {".clut.bits"});
  // A grid row must have codes 0, 1, 2, ... and 8-bit entries.
  const std::string v = "model.layers.0.self_attn.v_proj";
  PackedModel gc = sample_model();
  {
    PackedLutLayer& l = gc.lut_layers.at(v);
    const int64_t k = quant::packed_lut_offsets(l.cols, l.bits).codebook[1];  // row 1's code 0
    l.codebook_q8[k] = 5;
    l.codebook[k] = quant::lut_q8_entry(l.codebook_q8_grid[2], l.codebook_q8_grid[3], 5);
  }
  expect_bad_input([&] { write_packed_model(file("w.safetensors"), gc); }, {v, "grid row 1"});
  PackedModel gf = sample_model();
  gf.lut_layers.at("model.layers.0.self_attn.q_proj").grid_rows.assign(9, 1);
  expect_bad_input([&] { write_packed_model(file("w.safetensors"), gf); },
                   {"model.layers.0.self_attn.q_proj", "without 8-bit entries"});
  PackedModel k = sample_model();
  k.metadata["skim.method"] = "x";
  expect_bad_input([&] { write_packed_model(file("w.safetensors"), k); }, {"reserved"});
  EXPECT_FALSE(fs::exists(file("w.safetensors")));
  EXPECT_TRUE(fs::is_empty(dir_));
}

}  // namespace
}  // namespace skim::io
