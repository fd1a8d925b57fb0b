// Error tables and the L-full error against direct double-precision sums.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "src/core/half.h"
#include "src/quant/error_table.h"
#include "src/quant/hessian.h"
#include "src/quant/layer_error.h"
#include "src/quant/lut_layer.h"
#include "tests/quant/damped_hessian.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

using testing::damped_hessian;

// d H d^T with every product and sum in double.
double direct_form(const std::vector<double>& d, const Tensor& h) {
  const int64_t n = h.dim(0);
  double s = 0.0;
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < n; ++b) s += d[a] * static_cast<double>(h.at(a, b)) * d[b];
  return s;
}

TEST(ErrorTable, ColumnsMatchDirectPerRowErrors) {
  const auto L = testing::make_synthetic_layer(37, 96, 31);
  const Tensor w({L.rows, L.cols}, L.w);
  const Tensor h = damped_hessian(L);
  std::vector<float> f(L.cols);
  for (int64_t j = 0; j < L.cols; ++j) f[j] = h.at(j, j);
  const ErrorTable t = build_error_table(w, h, {f.data(), 0}, 1, 4);
  ASSERT_EQ(t.rows, L.rows);
  double worst = 0.0;
  for (int64_t i = 0; i < L.rows; ++i) {
    for (int b = 1; b <= 4; ++b) {
      const auto km = kmeans1d(w.row(i), f, 1 << b);
      std::vector<double> d(L.cols);
      for (int64_t j = 0; j < L.cols; ++j)
        d[j] = static_cast<double>(half_to_float(float_to_half(km.centroids[km.labels[j]]))) -
               w.at(i, j);
      const double ref = direct_form(d, h);
      EXPECT_NEAR(t.at(i, b), ref, 1e-5 * ref) << "row " << i << " bits " << b;
      worst = std::max(worst, std::fabs(t.at(i, b) / ref - 1.0));
    }
  }
  std::printf("error table worst relative deviation from double: %.2e\n", worst);
}

TEST(ErrorTable, ExactPositionsAddNoError) {
  // Reserved weights are stored beside the LUT: a table with exact positions has, for each row,
  // the error of its K-means row with those positions' differences set to zero.
  const auto L = testing::make_synthetic_layer(20, 80, 33);
  const Tensor w({L.rows, L.cols}, L.w);
  const Tensor h = damped_hessian(L);
  std::vector<float> f(L.cols);
  for (int64_t j = 0; j < L.cols; ++j) f[j] = h.at(j, j);
  SparsePart exact;
  exact.row_ptr = {0};
  for (int64_t i = 0; i < L.rows; ++i) {
    for (int64_t k = 0; k < i % 4; ++k) exact.cols.push_back(static_cast<int32_t>(k * 17 + i));
    exact.row_ptr.push_back(static_cast<int64_t>(exact.cols.size()));
  }
  exact.values.assign(exact.cols.size(), 0);
  const ErrorTable t =
      build_error_table(w, h, {f.data(), 0}, 1, 3, KMeansSolver::kLloyd, LutEntries::kF16, &exact);
  int changed = 0;
  for (int64_t i = 0; i < L.rows; ++i)
    for (int b = 1; b <= 3; ++b) {
      const auto km = kmeans1d(w.row(i), f, 1 << b);
      std::vector<double> d(L.cols);
      for (int64_t j = 0; j < L.cols; ++j)
        d[j] = static_cast<double>(half_to_float(float_to_half(km.centroids[km.labels[j]]))) -
               w.at(i, j);
      const double all = direct_form(d, h);
      for (int64_t k = exact.row_ptr[i]; k < exact.row_ptr[i + 1]; ++k) d[exact.cols[k]] = 0.0;
      const double ref = direct_form(d, h);
      EXPECT_NEAR(t.at(i, b), ref, 1e-5 * ref) << "row " << i << " bits " << b;
      changed += std::fabs(ref - all) > 1e-4 * all ? 1 : 0;
    }
  EXPECT_GT(changed, L.rows);  // the positions did change the errors
}

// With 8-bit entries each table entry is the error of the row as the writer stores it: the
// K-means LUT through the layer encoder (encode_codebook_q8 / _d8) and dequantize.
TEST(ErrorTable, EightBitEntriesMatchTheStoredRowsErrors) {
  const auto L = testing::make_synthetic_layer(24, 96, 35);
  const Tensor w({L.rows, L.cols}, L.w);
  const Tensor h = damped_hessian(L);
  std::vector<float> f(L.cols);
  for (int64_t j = 0; j < L.cols; ++j) f[j] = h.at(j, j);
  const ErrorTable f16 = build_error_table(w, h, {f.data(), 0}, 2, 6);
  for (const LutEntries entries : {LutEntries::kQ8, LutEntries::kD8}) {
    const ErrorTable t =
        build_error_table(w, h, {f.data(), 0}, 2, 6, KMeansSolver::kLloyd, entries);
    int moved = 0;
    for (int64_t i = 0; i < L.rows; ++i) {
      for (int b = 2; b <= 6; ++b) {
        const auto km = kmeans1d(w.row(i), f, 1 << b);
        LutLayer one;
        one.rows = 1;
        one.cols = L.cols;
        one.bits = {static_cast<uint8_t>(b)};
        one.codebook_offset = {0, int64_t{1} << b};
        for (const float c : km.centroids) one.codebook.push_back(float_to_half(c));
        one.labels = km.labels;
        if (entries == LutEntries::kQ8) encode_codebook_q8(one);
        if (entries == LutEntries::kD8) encode_codebook_d8(one);
        const Tensor stored = dequantize(one);
        std::vector<double> d(L.cols);
        for (int64_t j = 0; j < L.cols; ++j)
          d[j] = static_cast<double>(stored.at(0, j)) - w.at(i, j);
        const double ref = direct_form(d, h);
        EXPECT_NEAR(t.at(i, b), ref, 1e-5 * ref) << "row " << i << " bits " << b;
        moved += std::fabs(t.at(i, b) - f16.at(i, b)) > 1e-4 * ref ? 1 : 0;
      }
    }
    EXPECT_GT(moved, L.rows) << "8-bit storage changed too few table entries";
  }
}

TEST(ErrorTable, PerRowImportanceIsUsed) {
  // A per-row f that zeroes half the columns must change the K-means and so the table.
  const auto L = testing::make_synthetic_layer(8, 64, 32);
  const Tensor w({L.rows, L.cols}, L.w);
  const Tensor h = damped_hessian(L);
  std::vector<float> f(L.rows * L.cols, 1.0f);
  const ErrorTable uniform = build_error_table(w, h, {f.data(), L.cols}, 2, 2);
  for (int64_t k = 0; k < L.rows * L.cols; k += 2) f[k] = 0.0f;
  const ErrorTable half = build_error_table(w, h, {f.data(), L.cols}, 2, 2);
  int differ = 0;
  for (int64_t i = 0; i < L.rows; ++i) differ += uniform.at(i, 2) != half.at(i, 2);
  EXPECT_GT(differ, 0);
}

TEST(LayerError, MatchesDoubleReference) {
  const auto L = testing::make_synthetic_layer(20, 80, 33);
  const Tensor w({L.rows, L.cols}, L.w);
  const Tensor h = damped_hessian(L);
  Tensor w_hat = w;
  testing::SyntheticRng rng(5);
  for (float& x : w_hat.values()) x += static_cast<float>(0.003 * rng.normal());
  double ref = 0.0, energy = 0.0;
  std::vector<double> rows = row_errors(w, w_hat, h);
  for (int64_t i = 0; i < L.rows; ++i) {
    std::vector<double> d(L.cols), wi(L.cols);
    for (int64_t j = 0; j < L.cols; ++j) {
      d[j] = static_cast<double>(w_hat.at(i, j)) - w.at(i, j);
      wi[j] = w.at(i, j);
    }
    const double e = direct_form(d, h);
    EXPECT_NEAR(rows[i], e, 1e-5 * e);
    ref += e;
    energy += direct_form(wi, h);
  }
  EXPECT_NEAR(layer_error(w, w_hat, h), ref, 1e-5 * ref);
  EXPECT_NEAR(output_energy(w, h), energy, 1e-5 * energy);
  // The double overload agrees with the loops to rounding.
  std::vector<double> dd(L.rows * L.cols), hd(L.cols * L.cols), out(L.rows);
  for (size_t k = 0; k < dd.size(); ++k) dd[k] = static_cast<double>(w_hat.data()[k]) - w.data()[k];
  for (size_t k = 0; k < hd.size(); ++k) hd[k] = h.data()[k];
  row_quadratic_forms(dd.data(), L.rows, L.cols, hd.data(), out.data());
  double s = 0.0;
  for (double e : out) s += e;
  EXPECT_NEAR(s, ref, 1e-12 * ref);
}

}  // namespace
}  // namespace skim::quant
