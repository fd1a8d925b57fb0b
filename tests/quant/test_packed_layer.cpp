#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "src/core/error.h"
#include "src/core/half.h"
#include "src/quant/packed_layer.h"
#include "src/quant/rtn.h"
#include "src/quant/skim_layer.h"
#include "tests/quant/random_lut_layer.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

using testing::random_lut_layer;
using testing::SyntheticRng;

// Reference packer: sets stream bit j*b + t (bit t of value j) as bit (k % 8) of byte k / 8.
std::vector<uint8_t> reference_pack(const std::vector<uint8_t>& v, int bits) {
  std::vector<uint8_t> out((v.size() * bits + 7) / 8, 0);
  for (size_t j = 0; j < v.size(); ++j)
    for (int t = 0; t < bits; ++t)
      if ((v[j] >> t) & 1) {
        const size_t k = j * bits + t;
        out[k / 8] |= static_cast<uint8_t>(1u << (k % 8));
      }
  return out;
}

TEST(PackRow, RoundTripEveryWidthAndOddLengths) {
  SyntheticRng rng(1);
  for (int bits = 1; bits <= 8; ++bits) {
    for (int64_t cols : {1, 3, 7, 8, 13, 64, 101, 333}) {
      std::vector<uint8_t> v(static_cast<size_t>(cols));
      for (auto& x : v) x = static_cast<uint8_t>(rng.next() % (1u << bits));
      v[0] = static_cast<uint8_t>((1u << bits) - 1);  // the all-ones value
      const int64_t bytes = packed_row_bytes(cols, bits);
      ASSERT_EQ(bytes, (cols * bits + 7) / 8);
      std::vector<uint8_t> packed(static_cast<size_t>(bytes) + 1, 0xAB);  // guard byte
      pack_row(v.data(), cols, bits, packed.data());
      EXPECT_EQ(packed.back(), 0xAB) << "wrote past the row";
      packed.pop_back();
      EXPECT_EQ(packed, reference_pack(v, bits)) << bits << " bits, " << cols << " cols";
      std::vector<uint8_t> back(static_cast<size_t>(cols), 0xFF);
      unpack_row(packed.data(), cols, bits, back.data());
      EXPECT_EQ(back, v) << bits << " bits, " << cols << " cols";
    }
  }
}

TEST(PackRow, DocumentedLayoutExample) {
  // 3-bit values 1, 2, 7, 5: stream 001 010 111 101 read LSB first -> bytes 0xD1, 0x0B.
  const std::vector<uint8_t> v = {1, 2, 7, 5};
  std::vector<uint8_t> packed(2);
  pack_row(v.data(), 4, 3, packed.data());
  EXPECT_EQ(packed[0], 0xD1);
  EXPECT_EQ(packed[1], 0x0B);
}

// W^ in double, straight from the definition.
std::vector<double> dense_reference(const LutLayer& l) {
  std::vector<double> w(static_cast<size_t>(l.rows * l.cols));
  for (int64_t i = 0; i < l.rows; ++i)
    for (int64_t j = 0; j < l.cols; ++j) {
      const double c = half_to_float(
          l.codebook[static_cast<size_t>(l.codebook_offset[i] + l.labels[i * l.cols + j])]);
      const double a = l.alpha.empty() ? 1.0 : half_to_float(l.alpha[j]);
      w[i * l.cols + j] = c / a;
    }
  if (!l.sparse.empty())
    for (int64_t i = 0; i < l.rows; ++i)
      for (int64_t k = l.sparse.row_ptr[i]; k < l.sparse.row_ptr[i + 1]; ++k)
        w[i * l.cols + l.sparse.cols[k]] += half_to_float(l.sparse.values[k]);
  return w;
}

LutLayer with_sparse(LutLayer l, uint64_t seed) {
  l.sparse = testing::random_sparse_part(l.rows, l.cols, seed);
  return l;
}

// |got - W x| <= 1e-5 * sum_j |w_ij x_j| (+ a tiny absolute floor) for every output.
void expect_product(const std::vector<double>& w, int64_t rows, int64_t cols,
                    const std::vector<float>& x, int64_t batch, const std::vector<float>& got) {
  ASSERT_EQ(got.size(), static_cast<size_t>(batch * rows));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < rows; ++i) {
      double ref = 0.0, mag = 0.0;
      for (int64_t j = 0; j < cols; ++j) {
        ref += w[i * cols + j] * x[b * cols + j];
        mag += std::fabs(w[i * cols + j] * x[b * cols + j]);
      }
      ASSERT_NEAR(got[b * rows + i], ref, 1e-5 * mag + 1e-30) << "batch " << b << " row " << i;
    }
}

std::vector<float> random_input(int64_t n, uint64_t seed) {
  SyntheticRng rng(seed);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = static_cast<float>(rng.normal());
  return x;
}

TEST(PackedLut, PackUnpackRoundTrip) {
  for (int64_t cols : {1, 13, 101}) {
    const LutLayer l = random_lut_layer(19, cols, 2 + cols, true);
    const PackedLutLayer p = pack(l);
    int64_t bytes = 0;
    for (uint8_t b : l.bits) bytes += (cols * b + 7) / 8;
    EXPECT_EQ(static_cast<int64_t>(p.labels.size()), bytes);
    const LutLayer back = unpack(p);
    EXPECT_EQ(back.bits, l.bits);
    EXPECT_EQ(back.codebook_offset, l.codebook_offset);
    EXPECT_EQ(back.codebook, l.codebook);
    EXPECT_EQ(back.labels, l.labels);
    EXPECT_EQ(back.alpha, l.alpha);
    const LutLayer s = with_sparse(l, 3);
    const LutLayer s_back = unpack(pack(s));
    EXPECT_EQ(s_back.sparse.row_ptr, s.sparse.row_ptr);
    EXPECT_EQ(s_back.sparse.cols, s.sparse.cols);
    EXPECT_EQ(s_back.sparse.values, s.sparse.values);
  }
}

TEST(PackedLut, DequantizeMatchesDefinition) {
  for (bool sparse : {false, true}) {
    const LutLayer l = sparse ? with_sparse(random_lut_layer(9, 31, 3, true), 4)
                              : random_lut_layer(9, 31, 3, true);
    const Tensor d = dequantize(l);
    const std::vector<double> ref = dense_reference(l);
    for (int64_t k = 0; k < d.numel(); ++k)
      ASSERT_NEAR(d.data()[k], ref[k], 1e-7 * std::fabs(ref[k]));
  }
}

TEST(PackedLut, GemvEqualsDenseProduct) {
  for (bool with_alpha : {false, true}) {
    for (int64_t cols : {1, 77, 301}) {
      const LutLayer l = with_alpha ? with_sparse(random_lut_layer(40, cols, 4 + cols, true), 5)
                                    : random_lut_layer(40, cols, 4 + cols, false);
      const PackedLutLayer p = pack(l);
      const std::vector<float> x = random_input(cols, 5);
      std::vector<float> y(static_cast<size_t>(l.rows));
      gemv(p, x.data(), y.data());
      expect_product(dense_reference(l), l.rows, cols, x, 1, y);
    }
  }
}

TEST(PackedLut, GemmEqualsDenseProduct) {
  for (int64_t batch : {1, 5, 300}) {  // 300 spans two partial-sum chunks
    const int64_t cols = 129;
    const LutLayer l = with_sparse(random_lut_layer(24, cols, 6, true), 6);
    const PackedLutLayer p = pack(l);
    const std::vector<float> x = random_input(batch * cols, 7);
    std::vector<float> y(static_cast<size_t>(batch * l.rows));
    gemm(p, x.data(), batch, y.data());
    expect_product(dense_reference(l), l.rows, cols, x, batch, y);
  }
}

TEST(PackedLut, StoredBitsCountEverything) {
  const int64_t cols = 64;  // a multiple of 8: no padding
  const LutLayer l = random_lut_layer(16, cols, 8, true);
  int64_t expected = lut_layer_overhead_bits(cols, true);
  for (uint8_t b : l.bits) expected += lut_row_cost_bits(cols, b, LutEntries::kF16);
  EXPECT_EQ(stored_bits(pack(l)), expected);
  // A sparse part: 16 (value) + 16 (column) per entry and 8 per row (its count, at most 255).
  const LutLayer s = with_sparse(l, 8);
  ASSERT_GT(s.sparse.nnz(), 0);
  EXPECT_EQ(stored_bits(pack(s)), expected + 32 * s.sparse.nnz() + 8 * l.rows);
  EXPECT_EQ(lut_stored_bits(s), stored_bits(pack(s)));
}

TEST(PackedLut, PackRejectsInvalidLayers) {
  LutLayer l = random_lut_layer(4, 10, 9, true);
  LutLayer bad_label = l;
  bad_label.labels[0] = static_cast<uint8_t>(1u << l.bits[0]);
  EXPECT_THROW(pack(bad_label), Error);
  LutLayer bad_alpha = l;
  bad_alpha.alpha[3] = float_to_half(-1.0f);
  EXPECT_THROW(pack(bad_alpha), Error);
  LutLayer short_lut = l;
  short_lut.codebook.pop_back();
  short_lut.codebook_offset.back() -= 1;
  EXPECT_THROW(pack(short_lut), Error);
  // Sparse parts: a column out of range, columns not ascending, row pointers that do not add up,
  // a row pointer past the end in the middle, a non-finite value.
  const LutLayer s = with_sparse(l, 10);
  ASSERT_GE(s.sparse.row_ptr[3] - s.sparse.row_ptr[2], 2);
  LutLayer bad_col = s;
  bad_col.sparse.cols.back() = 10;
  EXPECT_THROW(pack(bad_col), Error);
  LutLayer unsorted = s;
  std::swap(unsorted.sparse.cols[static_cast<size_t>(s.sparse.row_ptr[2])],
            unsorted.sparse.cols[static_cast<size_t>(s.sparse.row_ptr[2] + 1)]);
  EXPECT_THROW(pack(unsorted), Error);
  LutLayer short_ptr = s;
  short_ptr.sparse.row_ptr.pop_back();
  EXPECT_THROW(pack(short_ptr), Error);
  LutLayer past_end = s;
  past_end.sparse.row_ptr[1] = s.sparse.nnz() + 5;
  EXPECT_THROW(pack(past_end), Error);
  LutLayer inf = s;
  inf.sparse.values[0] = 0x7c00;  // +inf
  EXPECT_THROW(pack(inf), Error);
}

std::vector<double> dense_uniform(const UniformLayer& u) {
  const Tensor d = dequantize(u);
  return std::vector<double>(d.values().begin(), d.values().end());
}

// gemm on `batch` random tokens and gemv on the first, against the dense reference W^.
void expect_uniform_products(const PackedUniformLayer& p, const std::vector<double>& ref,
                             int64_t batch, uint64_t seed) {
  const std::vector<float> x = random_input(batch * p.cols, seed);
  std::vector<float> y(static_cast<size_t>(batch * p.rows));
  gemm(p, x.data(), batch, y.data());
  expect_product(ref, p.rows, p.cols, x, batch, y);
  std::vector<float> y1(static_cast<size_t>(p.rows));
  gemv(p, x.data(), y1.data());
  expect_product(ref, p.rows, p.cols, x, 1, y1);
}

TEST(PackedUniform, RoundTripAndProducts) {
  for (int bits : {2, 3, 5, 8}) {
    // gs 64 without a permutation: the per-group table path of the products (whole runs of 8
    // columns per group); gs 16 with an act-order style permutation; 0: one group per row.
    for (int64_t gs : {0, 16, 64}) {
      const int64_t rows = 21, cols = 99;
      const Tensor w({rows, cols}, testing::synthetic_weights(rows, cols, 10 + bits));
      UniformLayer u = rtn_quantize(w, {.bits = bits, .group_size = gs});
      if (gs == 16) {  // an act-order style permutation: reversed columns
        u.perm.resize(cols);
        for (int64_t k = 0; k < cols; ++k) u.perm[k] = static_cast<int32_t>(cols - 1 - k);
      }
      const PackedUniformLayer p = pack(u);
      EXPECT_EQ(static_cast<int64_t>(p.codes.size()), rows * ((cols * bits + 7) / 8));
      const UniformLayer back = unpack(p);
      EXPECT_EQ(back.codes, u.codes);
      EXPECT_EQ(back.scale, u.scale);
      EXPECT_EQ(back.zero, u.zero);
      EXPECT_EQ(back.perm, u.perm);
      // Independent dense reference: scale * (code - zero) with each column's group.
      std::vector<double> ref(static_cast<size_t>(rows * cols));
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t k = 0; k < cols; ++k) {
          const int64_t j = u.perm.empty() ? k : u.perm[k];
          const int64_t g = gs == 0 ? 0 : k / gs;
          const size_t pi = static_cast<size_t>(i * u.groups() + g);
          ref[i * cols + j] = static_cast<double>(half_to_float(u.scale[pi])) *
                              (u.codes[i * cols + j] - half_to_float(u.zero[pi]));
        }
      const std::vector<double> deq = dense_uniform(u);
      for (size_t k = 0; k < ref.size(); ++k) ASSERT_NEAR(deq[k], ref[k], 1e-7);
      expect_uniform_products(p, ref, 3, 11);
    }
  }
}

// Group widths: codes requantized at each group's width, then packed group after group;
// the layout, the products and the stored bits checked against a reading of the definition.
TEST(PackedUniform, GroupWidthsLayoutProductsAndBits) {
  const int64_t rows = 13, cols = 72, gs = 32;  // groups of 32, 32, 8 columns
  const std::vector<uint8_t> widths = {2, 5, 3};
  const Tensor w({rows, cols}, testing::synthetic_weights(rows, cols, 77));
  UniformLayer u = rtn_quantize(w, {.bits = 4, .group_size = gs});
  u.group_bits = widths;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const int b = widths[j / gs];
      u.codes[i * cols + j] = static_cast<uint8_t>(u.codes[i * cols + j] % (1 << b));
      // Every code of the group's width occurs, beyond the nominal 4 bits too.
      if ((i + j) % 5 == 0) u.codes[i * cols + j] = static_cast<uint8_t>((1 << b) - 1 - i % 3);
      const size_t k = static_cast<size_t>(i * u.groups() + j / gs);
      u.zero[k] = float_to_half(std::min(half_to_float(u.zero[k]), float((1 << b) - 1)));
    }
  const PackedUniformLayer p = pack(u);
  const int64_t row_bytes = 32 * 2 / 8 + 32 * 5 / 8 + 8 * 3 / 8;
  ASSERT_EQ(static_cast<int64_t>(p.codes.size()), rows * row_bytes);
  for (int64_t i = 0; i < rows; ++i) {  // each group a separate little-endian stream
    int64_t offset = 0;
    for (int64_t g = 0; g < 3; ++g) {
      const int64_t n = std::min(cols, (g + 1) * gs) - g * gs;
      const std::vector<uint8_t> v(u.codes.begin() + i * cols + g * gs,
                                   u.codes.begin() + i * cols + g * gs + n);
      const std::vector<uint8_t> ref = reference_pack(v, widths[g]);
      ASSERT_TRUE(std::equal(ref.begin(), ref.end(), p.codes.begin() + i * row_bytes + offset))
          << "row " << i << " group " << g;
      offset += static_cast<int64_t>(ref.size());
    }
  }
  EXPECT_EQ(unpack(p).codes, u.codes);
  EXPECT_EQ(stored_bits(p), rows * (32 * 2 + 32 * 5 + 8 * 3) + 32 * rows * 3 + 8 * 3);
  EXPECT_EQ(stored_bits(u), stored_bits(p));
  std::vector<double> ref(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const size_t k = static_cast<size_t>(i * u.groups() + j / gs);
      ref[i * cols + j] = static_cast<double>(half_to_float(u.scale[k])) *
                          (u.codes[i * cols + j] - half_to_float(u.zero[k]));
    }
  expect_uniform_products(p, ref, 4, 12);
  // A code wider than its group, a width of 9, a group size not a multiple of 8: refused.
  UniformLayer wide = u;
  wide.codes[0] = 4;  // group 0 has 2 bits
  EXPECT_THROW(pack(wide), Error);
  UniformLayer nine = u;
  nine.group_bits[1] = 9;
  EXPECT_THROW(pack(nine), Error);
  UniformLayer odd = rtn_quantize(w, {.bits = 3, .group_size = 12});
  odd.group_bits.assign(static_cast<size_t>(odd.groups()), 3);
  EXPECT_THROW(pack(odd), Error);
}

}  // namespace
}  // namespace skim::quant
