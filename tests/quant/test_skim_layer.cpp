// SKIM end to end on synthetic layers against the kmeans baseline at the same stored bits.
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "src/core/half.h"
#include "src/quant/hessian.h"
#include "src/quant/layer_error.h"
#include "src/quant/lut_layer.h"
#include "src/quant/skim_layer.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

struct Case {
  Tensor w;
  Tensor h;
};

Case make_case(int64_t rows, int64_t cols, uint64_t seed) {
  const auto L = testing::make_synthetic_layer(rows, cols, seed);
  Case c{Tensor({rows, cols}, L.w), Tensor({cols, cols})};
  for (size_t k = 0; k < L.h.size(); ++k) c.h.data()[k] = static_cast<float>(L.h[k]);
  damp_hessian(c.h);
  return c;
}

TEST(SkimLayer, BeatsKMeansAtTheSameStoredBits) {
  for (int bits : {2, 3, 4}) {
    const Case c = make_case(128, 512, 70 + bits);
    const LutLayer km = quantize_kmeans_layer(c.w, c.h, bits);
    const double km_bits = static_cast<double>(lut_stored_bits(km)) / c.w.numel();
    const double km_err = layer_error(c.w, dequantize(km), c.h);

    SkimOptions opt;
    opt.bits = km_bits;
    opt.b_max = std::max(4, bits + 1);
    const SkimLayerResult sk = quantize_skim_layer(c.w, c.h, opt);
    const double sk_err = layer_error(c.w, dequantize(sk.layer), c.h);
    const double sk_bits = static_cast<double>(lut_stored_bits(sk.layer)) / c.w.numel();

    SkimOptions plain = opt;  // allocation only: no scale, weighted-mean LUTs
    plain.scale.train = false;
    plain.scale.refine_full_hessian = false;
    const double plain_err =
        layer_error(c.w, dequantize(quantize_skim_layer(c.w, c.h, plain).layer), c.h);

    std::printf(
        "%d bits: kmeans %.5g at %.4f bits; skim %.5g at %.4f bits (%.1f%% lower); "
        "allocation only %.5g\n",
        bits, km_err, km_bits, sk_err, sk_bits, 100.0 * (1.0 - sk_err / km_err), plain_err);
    EXPECT_LE(sk_bits, km_bits);
    EXPECT_DOUBLE_EQ(sk_bits, sk.allocation.average_bits);
    EXPECT_LT(sk_err, km_err);
    EXPECT_NEAR(sk_err, sk.scale.error_final, 1e-5 * sk_err);
  }
}

TEST(SkimLayer, GivenBitsAreKept) {
  const Case c = make_case(16, 128, 80);
  std::vector<uint8_t> bits(16);
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = static_cast<uint8_t>(1 + i % 4);
  const SkimLayerResult r = quantize_skim_layer_with_bits(c.w, c.h, bits, {});
  EXPECT_EQ(r.layer.bits, bits);
  EXPECT_EQ(r.layer.codebook_offset.back(),
            2 + 4 + 8 + 16 + 2 + 4 + 8 + 16 + 2 + 4 + 8 + 16 + 2 + 4 + 8 + 16);
  for (size_t k = 0; k < r.layer.labels.size(); ++k)
    EXPECT_LT(r.layer.labels[k], 1 << bits[k / 128]);
  validate(r.layer, "skim test layer");
}

TEST(SkimLayer, KMeansBaselineImprovesWithBitsAndUsesNoScale) {
  const Case c = make_case(32, 256, 81);
  double prev = 1e300;
  for (int b = 1; b <= 4; ++b) {
    const LutLayer km = quantize_kmeans_layer(c.w, c.h, b);
    EXPECT_TRUE(km.alpha.empty());
    EXPECT_EQ(lut_stored_bits(km), 32 * lut_row_cost_bits(256, b, LutEntries::kF16));
    const double e = layer_error(c.w, dequantize(km), c.h);
    EXPECT_LT(e, prev);
    prev = e;
  }
}

TEST(SkimLayer, UniformImportanceIsWorseInFullErrorThanHessianDiagonal) {
  // With outlier input channels, ignoring H_jj spends centroids on weights that do not matter.
  const Case c = make_case(64, 256, 82);
  const double hd = layer_error(c.w, dequantize(quantize_kmeans_layer(c.w, c.h, 3)), c.h);
  const double un = layer_error(
      c.w, dequantize(quantize_kmeans_layer(c.w, c.h, 3, ImportanceKind::kUniform)), c.h);
  std::printf("kmeans 3 bits: f = H_jj %.5g, f = 1 %.5g\n", hd, un);
  EXPECT_LT(hd, un);
}

}  // namespace
}  // namespace skim::quant
