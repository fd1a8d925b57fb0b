// The GPU layout of a packed LUT layer, checked on the CPU: decoding the device words with the
// documented column rule gives back the original labels; the conversion round-trips; padding is
// zero; a product computed from the device layout by plain loops matches the dense product.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "kernels/gpu/lut_device_layout.h"
#include "src/core/error.h"
#include "src/core/half.h"
#include "tests/kernels_gpu/random_lut_layer.h"
#include "tests/quant/random_lut_layer.h"

namespace skim::kernels::gpu {
namespace {

using testing::random_lut_layer;

class LayoutShapes : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, bool>> {};

TEST_P(LayoutShapes, DecodesBackToTheOriginalLabels) {
  const auto [rows, cols, with_alpha] = GetParam();
  const quant::PackedLutLayer packed = random_lut_layer(
      rows, cols, {1, 2, 3, 4, 5, 6, 7, 8}, with_alpha, static_cast<uint32_t>(rows + cols));
  const quant::LutLayer original = quant::unpack(packed);
  const LutDeviceLayout layout = to_device_layout(packed);

  int64_t seen_rows = 0;
  int prev_bits = 0;
  for (const LutDeviceGroup& g : layout.groups) {
    EXPECT_GT(g.bits, prev_bits);  // ascending widths, one group each
    prev_bits = g.bits;
    EXPECT_EQ(g.rows_padded % kLutRowAlign, 0);
    EXPECT_EQ(g.words_per_row % kLutSegmentWords, 0);  // rows start on 128-byte boundaries
    EXPECT_GE(g.words_per_row * (32 / g.bits), cols);
    ASSERT_EQ(g.words.size(), static_cast<size_t>(g.rows_padded * g.words_per_row));
    ASSERT_EQ(g.lut.size(), static_cast<size_t>(g.rows_padded << g.bits));
    const int per_word = 32 / g.bits;
    int32_t prev_row = -1;
    for (int64_t r = 0; r < g.rows_padded; ++r) {
      const int32_t i = g.row_index[static_cast<size_t>(r)];
      const uint32_t* words = g.words.data() + r * g.words_per_row;
      if (r >= g.rows) {  // padding row
        EXPECT_EQ(i, -1);
        for (int64_t w = 0; w < g.words_per_row; ++w) EXPECT_EQ(words[w], 0u);
        continue;
      }
      ASSERT_GT(i, prev_row);  // original order kept within a group
      prev_row = i;
      ++seen_rows;
      ASSERT_EQ(original.bits[static_cast<size_t>(i)], g.bits);
      // Independent decode: word w, slot s holds column (w/32)*32*P + s*32 + w%32.
      for (int64_t w = 0; w < g.words_per_row; ++w) {
        if (per_word * g.bits < 32) {
          EXPECT_EQ(words[w] >> (per_word * g.bits), 0u);
        }
        for (int s = 0; s < per_word; ++s) {
          const int64_t col = (w / 32) * 32 * per_word + s * 32 + w % 32;
          const uint32_t label = (words[w] >> (s * g.bits)) & ((1u << g.bits) - 1u);
          if (col < cols) {
            ASSERT_EQ(label, original.labels[static_cast<size_t>(i * cols + col)])
                << "row " << i << " col " << col;
          } else {
            ASSERT_EQ(label, 0u) << "padding column " << col;
          }
        }
      }
      for (int k = 0; k < (1 << g.bits); ++k)
        EXPECT_EQ(g.lut[static_cast<size_t>((r << g.bits) + k)],
                  original.codebook[static_cast<size_t>(
                      original.codebook_offset[static_cast<size_t>(i)] + k)]);
    }
  }
  EXPECT_EQ(seen_rows, rows);

  const quant::PackedLutLayer back = from_device_layout(layout, with_alpha);
  EXPECT_EQ(back.bits, packed.bits);
  EXPECT_EQ(back.labels, packed.labels);
  EXPECT_EQ(back.codebook, packed.codebook);
  EXPECT_EQ(back.alpha, packed.alpha);

  // A sparse part travels as it is.
  quant::PackedLutLayer with_sparse = packed;
  with_sparse.sparse = quant::testing::random_sparse_part(with_sparse.rows, with_sparse.cols, 7);
  const quant::PackedLutLayer sparse_back =
      from_device_layout(to_device_layout(with_sparse), with_alpha);
  EXPECT_EQ(sparse_back.sparse.row_ptr, with_sparse.sparse.row_ptr);
  EXPECT_EQ(sparse_back.sparse.cols, with_sparse.sparse.cols);
  EXPECT_EQ(sparse_back.sparse.values, with_sparse.sparse.values);
}

TEST_P(LayoutShapes, ProductFromTheLayoutMatchesDense) {
  const auto [rows, cols, with_alpha] = GetParam();
  const quant::PackedLutLayer packed =
      random_lut_layer(rows, cols, {1, 2, 3, 4, 5, 6, 7, 8}, with_alpha, 7);
  const LutDeviceLayout layout = to_device_layout(packed);
  std::vector<float> x(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) x[static_cast<size_t>(j)] = std::sin(0.37f * j) + 0.1f;
  // Device-layout product the way the kernels compute it: x / alpha padded with zeros.
  std::vector<float> y(static_cast<size_t>(rows), NAN);
  for (const LutDeviceGroup& g : layout.groups) {
    const int per_word = 32 / g.bits;
    for (int64_t r = 0; r < g.rows; ++r) {
      double acc = 0.0;
      for (int64_t w = 0; w < g.words_per_row; ++w)
        for (int s = 0; s < per_word; ++s) {
          const int64_t col = lut_column_of(w, s, g.bits);
          const float xs = col < cols ? x[static_cast<size_t>(col)] /
                                            half_to_float(layout.alpha[static_cast<size_t>(col)])
                                      : 0.0f;
          const uint32_t k =
              (g.words[static_cast<size_t>(r * g.words_per_row + w)] >> (s * g.bits)) &
              ((1u << g.bits) - 1u);
          acc += half_to_float(g.lut[static_cast<size_t>((r << g.bits) + k)]) * xs;
        }
      y[static_cast<size_t>(g.row_index[static_cast<size_t>(r)])] = static_cast<float>(acc);
    }
  }
  const std::vector<float> w = testing::dense_weights(packed);
  for (int64_t i = 0; i < rows; ++i) {
    double ref = 0.0, mag = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      ref += double{w[static_cast<size_t>(i * cols + j)]} * x[static_cast<size_t>(j)];
      mag += std::abs(double{w[static_cast<size_t>(i * cols + j)]} * x[static_cast<size_t>(j)]);
    }
    EXPECT_NEAR(y[static_cast<size_t>(i)], ref, 1e-6 * mag + 1e-6) << "row " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, LayoutShapes,
                         ::testing::Values(std::make_tuple(int64_t{1}, int64_t{1}, false),
                                           std::make_tuple(int64_t{13}, int64_t{300}, true),
                                           std::make_tuple(int64_t{40}, int64_t{1024}, false),
                                           std::make_tuple(int64_t{37}, int64_t{1337}, true)));

TEST(LutDeviceLayout, SingleWidthHasOneGroup) {
  const quant::PackedLutLayer packed = random_lut_layer(20, 640, {3}, false, 3);
  const LutDeviceLayout layout = to_device_layout(packed);
  ASSERT_EQ(layout.groups.size(), 1u);
  EXPECT_EQ(layout.groups[0].bits, 3);
  EXPECT_EQ(layout.groups[0].rows, 20);
  EXPECT_EQ(layout.groups[0].rows_padded, 24);
  EXPECT_EQ(layout.groups[0].words_per_row, 64);  // 640 columns, 10 per word, 2 segments
  for (uint16_t a : layout.alpha) EXPECT_EQ(a, float_to_half(1.0f));
}

TEST(LutDeviceLayout, EightBitRowsHoldFourLabelsAWord) {
  const quant::PackedLutLayer packed = random_lut_layer(3, 200, {8}, false, 6);
  const LutDeviceLayout layout = to_device_layout(packed);
  ASSERT_EQ(layout.groups.size(), 1u);
  EXPECT_EQ(layout.groups[0].words_per_row, 64);  // 200 columns, 4 per word, 2 segments of 128
  EXPECT_EQ(layout.groups[0].lut.size(), 8u * 256u);
}

TEST(LutDeviceLayout, RejectsWidthsAboveEight) {
  quant::PackedLutLayer packed = random_lut_layer(4, 64, {2}, false, 4);
  packed.bits[1] = 9;  // sizes made consistent, so the width itself is what is refused
  const quant::PackedLutOffsets o = quant::packed_lut_offsets(packed.cols, packed.bits);
  packed.labels.resize(static_cast<size_t>(o.label.back()));
  packed.codebook.resize(static_cast<size_t>(o.codebook.back()));
  try {
    to_device_layout(packed, "q_proj");
    FAIL() << "a 9-bit row was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find("q_proj"), std::string::npos);
  }
}

TEST(LutDeviceLayout, RejectsInconsistentLayer) {
  quant::PackedLutLayer packed = random_lut_layer(4, 64, {2}, false, 5);
  packed.labels.pop_back();
  EXPECT_THROW(to_device_layout(packed), Error);
}

}  // namespace
}  // namespace skim::kernels::gpu
