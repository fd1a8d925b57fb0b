// The four methods against each other on a synthetic layer with realistic statistics
// (heavy-tailed weights, correlated activations, outlier channels): at the same stored bits,
// L-full error of skim < kmeans < rtn, and gptq < rtn. Every bit is counted (uniform: codes +
// fp16 scale and zero per group; LUT: indices + fp16 LUTs + per-row width; skim: + alpha).
#include <gtest/gtest.h>

#include <cstdio>

#include "src/quant/gptq.h"
#include "src/quant/hessian.h"
#include "src/quant/layer_error.h"
#include "src/quant/lut_layer.h"
#include "src/quant/rtn.h"
#include "src/quant/skim_layer.h"
#include "src/quant/uniform_layer.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

TEST(MethodOrdering, SkimBelowKmeansBelowRtnAndGptqBelowRtn) {
  const int64_t rows = 128, cols = 512;
  for (int bits : {3, 4}) {
    const auto L = testing::make_synthetic_layer(rows, cols, 900 + bits);
    const Tensor w({rows, cols}, L.w);
    Tensor h({cols, cols});  // undamped, as calibration gives it
    for (size_t k = 0; k < L.h.size(); ++k) h.data()[k] = static_cast<float>(L.h[k]);
    Tensor hd = h;
    damp_hessian(hd);
    const double n = static_cast<double>(rows * cols);

    // rtn and gptq with groups of 128 columns: bits + 32 / 128 per weight.
    const UniformLayer rtn = rtn_quantize(w, {bits, 128});
    GptqOptions g;
    g.bits = bits;
    g.group_size = 128;
    const UniformLayer gptq = gptq_quantize(w, h, g);
    const double uniform_bits = static_cast<double>(stored_bits(rtn)) / n;
    ASSERT_EQ(stored_bits(rtn), stored_bits(gptq));

    // kmeans at the same integer width costs bits + (16 * 2^bits + 8) / cols per weight: a
    // little more than the uniform methods, so kmeans is not favoured by its budget.
    const LutLayer km = quantize_kmeans_layer(w, hd, bits);
    const double km_bits = static_cast<double>(lut_stored_bits(km)) / n;
    ASSERT_GE(km_bits, uniform_bits);

    SkimOptions opt;  // skim gets the uniform methods' budget, the smallest of the three
    opt.bits = uniform_bits;
    const SkimLayerResult sk = quantize_skim_layer(w, hd, opt);
    const double sk_bits = static_cast<double>(lut_stored_bits(sk.layer)) / n;
    ASSERT_LE(sk_bits, uniform_bits);

    const double e_rtn = layer_error(w, dequantize(rtn), h);
    const double e_gptq = layer_error(w, dequantize(gptq), h);
    const double e_km = layer_error(w, dequantize(km), h);
    const double e_skim = layer_error(w, dequantize(sk.layer), h);
    std::printf("%d bits: rtn %.4g, gptq %.4g (%.3f bits); kmeans %.4g (%.3f); skim %.4g (%.3f)\n",
                bits, e_rtn, e_gptq, uniform_bits, e_km, km_bits, e_skim, sk_bits);
    EXPECT_LT(e_skim, e_km);
    EXPECT_LT(e_km, e_rtn);
    EXPECT_LT(e_gptq, e_rtn);
  }
}

}  // namespace
}  // namespace skim::quant
