// The sparse part (reserved weights): which entries are reserved, against a brute-force ranking;
// the corrections reproduce the reserved weights; row blocks concatenate; skim with reserved
// weights stays within its budget and beats skim without them on a layer with planted outliers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "src/core/half.h"
#include "src/quant/hessian.h"
#include "src/quant/layer_error.h"
#include "src/quant/lut_layer.h"
#include "src/quant/skim_layer.h"
#include "src/quant/sparse_part.h"
#include "tests/quant/random_lut_layer.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

using testing::SyntheticRng;

Tensor random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  SyntheticRng rng(seed);
  Tensor w({rows, cols});
  for (float& v : w.values()) v = static_cast<float>(0.1 * rng.normal());
  return w;
}

TEST(SparsePart, SplitReservesTheLargestWeightedDeviations) {
  const int64_t rows = 12, cols = 50;
  const Tensor w = random_matrix(rows, cols, 1);
  SyntheticRng rng(2);
  std::vector<float> f(cols);
  for (float& v : f) v = static_cast<float>(0.2 + rng.uniform());
  std::vector<int64_t> varied(rows);
  for (int64_t i = 0; i < rows; ++i) varied[i] = (i * 3) % 7;  // 0..6 per row, 0 included
  for (const bool same : {true, false}) {
    const OutlierSplit s = same ? split_outliers(w, f, 4) : split_outliers(w, f, varied);
    ASSERT_EQ(s.positions.row_ptr.size(), static_cast<size_t>(rows + 1));
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t per_row = same ? 4 : varied[i];
      double fw = 0, fs = 0;
      for (int64_t j = 0; j < cols; ++j) {
        fw += f[j] * double{w.at(i, j)};
        fs += f[j];
      }
      const double mean = fw / fs;
      std::vector<int32_t> order(cols);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
        return f[a] * std::pow(w.at(i, a) - mean, 2) > f[b] * std::pow(w.at(i, b) - mean, 2);
      });
      std::vector<int32_t> want(order.begin(), order.begin() + per_row);
      std::sort(want.begin(), want.end());
      const std::vector<int32_t> got(s.positions.cols.begin() + s.positions.row_ptr[i],
                                     s.positions.cols.begin() + s.positions.row_ptr[i + 1]);
      EXPECT_EQ(got, want) << "row " << i;
      for (int64_t j = 0; j < cols; ++j) {
        const bool reserved = std::binary_search(want.begin(), want.end(), j);
        EXPECT_NEAR(s.dense.at(i, j), reserved ? mean : w.at(i, j), 1e-6) << i << " " << j;
      }
    }
  }
}

TEST(SparsePart, ReserveMenuIsAbout512th128thAnd32ndOfTheColumns) {
  EXPECT_EQ(reserve_menu(576), (std::vector<int64_t>{1, 5, 18}));  // 1.1, 4.5, 18
  EXPECT_EQ(reserve_menu(1536), (std::vector<int64_t>{3, 12, 48}));
  EXPECT_EQ(reserve_menu(8192), (std::vector<int64_t>{16, 64, 256}));
  EXPECT_EQ(reserve_menu(64), (std::vector<int64_t>{1, 2}));  // 0.1 -> 1, 0.5 -> 1, 2
  EXPECT_EQ(reserve_menu(2), (std::vector<int64_t>{1}));
}

TEST(SparsePart, CorrectionsReproduceTheReservedWeights) {
  const int64_t rows = 10, cols = 40;
  LutLayer l = testing::random_lut_layer(rows, cols, 3, true);
  const Tensor lut_part = dequantize(l);
  const Tensor w = random_matrix(rows, cols, 4);
  l.sparse = split_outliers(w, std::vector<float>(cols, 1.0f), 3).positions;
  set_sparse_corrections(l, w);
  const Tensor got = dequantize(l);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const auto* first = l.sparse.cols.data() + l.sparse.row_ptr[i];
      const auto* last = l.sparse.cols.data() + l.sparse.row_ptr[i + 1];
      if (std::binary_search(first, last, static_cast<int32_t>(j))) {
        // fp16 keeps the correction to half an ulp (2^-11 relative), fp32 adds its own rounding.
        const double corr = double{w.at(i, j)} - lut_part.at(i, j);
        EXPECT_NEAR(got.at(i, j), w.at(i, j), std::fabs(corr) * 0x1p-11 + 1e-6) << i << " " << j;
      } else {
        EXPECT_EQ(got.at(i, j), lut_part.at(i, j)) << i << " " << j;
      }
    }
}

TEST(SparsePart, RowBlocksConcatenateToTheWhole) {
  const SparsePart whole = testing::random_sparse_part(11, 30, 5);
  std::vector<SparsePart> blocks;
  for (auto [first, count] : {std::pair{0, 4}, std::pair{4, 1}, std::pair{5, 6}}) {
    SparsePart b;
    b.row_ptr.push_back(0);
    for (int64_t i = first; i < first + count; ++i) {
      for (int64_t k = whole.row_ptr[i]; k < whole.row_ptr[i + 1]; ++k) {
        b.cols.push_back(whole.cols[k]);
        b.values.push_back(whole.values[k]);
      }
      b.row_ptr.push_back(b.nnz());
    }
    blocks.push_back(b);
  }
  const SparsePart back = concat_rows(blocks);
  EXPECT_EQ(back.row_ptr, whole.row_ptr);
  EXPECT_EQ(back.cols, whole.cols);
  EXPECT_EQ(back.values, whole.values);
  blocks[1] = SparsePart{};
  EXPECT_THROW(concat_rows(blocks), Error);
}

// The synthetic 64 x 256 layer and its damped H, with two weights of every `every`-th row set to
// +-20 times the row's spread.
struct PlantedLayer {
  Tensor w, h;
};
PlantedLayer planted_layer(int64_t every) {
  const int64_t rows = 64, cols = 256;
  const auto L = testing::make_synthetic_layer(rows, cols, 9);
  PlantedLayer p{Tensor({rows, cols}, L.w), Tensor({cols, cols})};
  for (size_t k = 0; k < L.h.size(); ++k) p.h.data()[k] = static_cast<float>(L.h[k]);
  damp_hessian(p.h);
  SyntheticRng rng(10);
  for (int64_t i = 0; i < rows; i += every) {
    double sd = 0;
    for (int64_t j = 0; j < cols; ++j) sd += double{p.w.at(i, j)} * p.w.at(i, j);
    sd = std::sqrt(sd / cols);
    for (int t = 0; t < 2; ++t)
      p.w.at(i, static_cast<int64_t>(rng.next() % cols)) =
          static_cast<float>((t == 0 ? 20.0 : -20.0) * sd);
  }
  return p;
}

TEST(SparsePart, SkimWithReservedWeightsBeatsSkimWithoutOnPlantedOutliers) {
  const PlantedLayer p = planted_layer(1);
  const Tensor &w = p.w, &h = p.h;
  const int64_t rows = w.dim(0), cols = w.dim(1);
  SkimOptions plain;
  plain.bits = 3.0;
  SkimOptions reserved = plain;
  reserved.outliers = 2.0 / cols;
  const SkimLayerResult a = quantize_skim_layer(w, h, plain);
  const SkimLayerResult b = quantize_skim_layer(w, h, reserved);
  ASSERT_EQ(b.layer.sparse.nnz(), 2 * rows);
  // The budget holds with the sparse part's bits: 2 * 32 per row + 8 per row (its count).
  EXPECT_EQ(stored_bits(b.layer.sparse, rows, cols), 2 * 32 * rows + 8 * rows);
  EXPECT_EQ(lut_stored_bits(b.layer), b.allocation.cost_bits);
  EXPECT_LE(lut_stored_bits(b.layer), static_cast<int64_t>(3.0 * rows * cols));
  const double err_a = layer_error(w, dequantize(a.layer), h);
  const double err_b = layer_error(w, dequantize(b.layer), h);
  std::printf("planted outliers, 3 bits: error %.5g without reserved weights, %.5g with\n", err_a,
              err_b);
  EXPECT_LT(err_b, 0.8 * err_a);
}

TEST(SparsePart, CountsChosenByTheAllocationBeatNoneAndAFixedCount) {
  // Planted outliers in every fourth row only: with each row's count chosen by the allocation
  // (--outliers auto) the layer stays within its budget as stored, and its error is below skim
  // without reserved weights and with a fixed count (which pays in rows that gain little; a
  // 3-bit LUT can give a planted outlier its own entry, so the allocation does not simply
  // reserve the planted pairs).
  const PlantedLayer p = planted_layer(4);
  const Tensor &w = p.w, &h = p.h;
  const int64_t rows = w.dim(0), cols = w.dim(1);
  SkimOptions plain;
  plain.bits = 3.0;
  plain.allocation.entries = LutEntries::kD8;
  SkimOptions fixed = plain;
  fixed.outliers = 2.0 / cols;
  SkimOptions chosen = plain;
  chosen.outliers_auto = true;
  SkimLayerResult a = quantize_skim_layer(w, h, plain);
  SkimLayerResult b = quantize_skim_layer(w, h, fixed);
  SkimLayerResult c = quantize_skim_layer(w, h, chosen);
  for (SkimLayerResult* r : {&a, &b, &c}) {  // stored as the writer stores them
    encode_codebook_d8(r->layer);
    if (!r->layer.sparse.empty()) set_sparse_corrections(r->layer, w);
  }
  ASSERT_FALSE(c.layer.sparse.empty());
  int64_t planted = 0, clean = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t n = c.layer.sparse.row_ptr[i + 1] - c.layer.sparse.row_ptr[i];
    (i % 4 == 0 ? planted : clean) += n;
  }
  // Row counts are 8 bits each, entries 32 (fp16 and a 16-bit column): as the allocation paid.
  EXPECT_EQ(lut_stored_bits(c.layer), c.allocation.cost_bits);
  EXPECT_LE(lut_stored_bits(c.layer), static_cast<int64_t>(3.0 * rows * cols));
  const double err_a = layer_error(w, dequantize(a.layer), h);
  const double err_b = layer_error(w, dequantize(b.layer), h);
  const double err_c = layer_error(w, dequantize(c.layer), h);
  std::printf(
      "planted outliers in a quarter of the rows, 3 bits: error %.5g none, %.5g fixed, "
      "%.5g chosen (%lld reserved in planted rows, %lld in others)\n",
      err_a, err_b, err_c, static_cast<long long>(planted), static_cast<long long>(clean));
  EXPECT_LT(err_c, 0.97 * err_a);
  EXPECT_LT(err_c, err_b);
}

}  // namespace
}  // namespace skim::quant
