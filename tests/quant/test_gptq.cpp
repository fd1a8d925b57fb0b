#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <ostream>
#include <vector>

#include "src/core/error.h"
#include "src/core/half.h"
#include "src/quant/gptq.h"
#include "src/quant/rtn.h"
#include "tests/quant/naive_gptq.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

using testing::Mat;

GptqOptions gptq_options(int bits, int64_t group_size, bool act_order = false) {
  GptqOptions o;
  o.bits = bits;
  o.group_size = group_size;
  o.act_order = act_order;
  return o;
}

struct Case {
  int bits;
  int64_t group_size;
  bool act_order;
  int64_t block_size;
  bool mixed = false;  // groups at bits - 1, bits + 1 and bits in turn
  bool clip = false;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "bits " << c.bits << " group " << c.group_size << " act_order " << c.act_order << " block "
      << c.block_size << " mixed " << c.mixed << " clip " << c.clip;
}

class GptqVsNaive : public ::testing::TestWithParam<Case> {};

TEST_P(GptqVsNaive, EqualsColumnByColumnAlgorithm) {
  const Case c = GetParam();
  const int64_t m = 48, n = 200;
  testing::SyntheticLayer layer = testing::make_synthetic_layer(m, n, 11);
  // Two dead input channels exercise the H_jj == 0 path.
  for (int64_t dead : {5, 137})
    for (int64_t k = 0; k < n; ++k) layer.h[dead * n + k] = layer.h[k * n + dead] = 0.0;
  const Tensor w({m, n}, layer.w);
  GptqOptions o = gptq_options(c.bits, c.group_size, c.act_order);
  o.block_size = c.block_size;
  o.clip_search = c.clip;
  testing::NaiveGptq ref_options{.bits = c.bits,
                                 .group_size = c.group_size,
                                 .act_order = c.act_order,
                                 .damp = 0.01,
                                 .group_bits = {},
                                 .clip = c.clip};
  if (c.mixed)
    for (int64_t g = 0; g < (n + c.group_size - 1) / c.group_size; ++g) {
      const int width = std::clamp(c.bits + (g % 3 == 0 ? -1 : g % 3 == 1 ? 1 : 0), 1, 8);
      o.group_bits.push_back(static_cast<uint8_t>(width));
      ref_options.group_bits.push_back(width);
    }
  const UniformLayer q = gptq_quantize(w, layer.h, o);
  const Mat ref = testing::naive_gptq(layer.w, layer.h, m, n, ref_options);
  const Tensor got = dequantize(q);
  EXPECT_EQ(q.group_bits, o.group_bits);
  EXPECT_EQ(q.perm.empty(), !c.act_order);
  double max_w = 0.0;
  for (float v : layer.w) max_w = std::max(max_w, std::fabs(static_cast<double>(v)));
  int64_t mismatches = 0;
  double max_diff = 0.0;
  for (int64_t k = 0; k < m * n; ++k) {
    const double diff = std::fabs(got.data()[k] - ref[k]);
    max_diff = std::max(max_diff, diff);
    if (diff > 1e-5 * max_w) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0) << "max diff " << max_diff << " (max |w| " << max_w << ")";
  for (int64_t i = 0; i < m; ++i) {
    EXPECT_EQ(got.at(i, 5), 0.0f);
    EXPECT_EQ(got.at(i, 137), 0.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, GptqVsNaive,
                         ::testing::Values(Case{4, 0, false, 128}, Case{3, 0, true, 128},
                                           Case{4, 32, false, 128}, Case{3, 64, true, 128},
                                           Case{4, 48, false, 128},  // groups not dividing
                                           Case{2, 48, true, 32},    // groups larger than a block
                                           Case{8, 0, false, 7},     // tiny blocks
                                           Case{3, 32, false, 128, true, false},
                                           Case{2, 48, false, 32, true, true},  // 1-bit groups
                                           Case{4, 64, false, 128, false, true},
                                           Case{7, 40, false, 7, true, true}));

TEST(Gptq, DiagonalHessianEqualsRtn) {
  // With H = I the error feedback is zero, so GPTQ is round-to-nearest.
  const int64_t m = 16, n = 64;
  const Tensor w({m, n}, testing::synthetic_weights(m, n, 5));
  std::vector<double> h(n * n, 0.0);
  for (int64_t j = 0; j < n; ++j) h[j * n + j] = 1.0;
  for (int64_t gs : {0, 16}) {
    const UniformLayer g = gptq_quantize(w, h, gptq_options(3, gs));
    const UniformLayer r = rtn_quantize(w, {.bits = 3, .group_size = gs});
    EXPECT_EQ(g.codes, r.codes);
    EXPECT_EQ(g.scale, r.scale);
    EXPECT_EQ(g.zero, r.zero);
  }
}

TEST(Gptq, LowerFullErrorThanRtn) {
  const int64_t m = 96, n = 256;
  const testing::SyntheticLayer layer = testing::make_synthetic_layer(m, n, 21);
  const Tensor w({m, n}, layer.w);
  for (int bits : {3, 4}) {
    for (int64_t gs : {0, 64}) {
      for (bool act : {false, true}) {
        const double e_rtn = testing::full_error(
            layer.w, dequantize(rtn_quantize(w, {.bits = bits, .group_size = gs})), layer.h, m, n);
        const double e_gptq = testing::full_error(
            layer.w, dequantize(gptq_quantize(w, layer.h, gptq_options(bits, gs, act))), layer.h, m,
            n);
        SCOPED_TRACE(::testing::Message() << "bits " << bits << " group " << gs << " act " << act
                                          << ": rtn " << e_rtn << " gptq " << e_gptq);
        EXPECT_LT(e_gptq, 0.7 * e_rtn);
      }
    }
  }
}

TEST(Gptq, RejectsBadInput) {
  const int64_t n = 8;
  const Tensor w({4, n}, testing::synthetic_weights(4, n, 6));
  std::vector<double> h(n * n, 0.0);
  for (int64_t j = 0; j < n; ++j) h[j * n + j] = 1.0;
  EXPECT_THROW(gptq_quantize(w, std::span<const double>(h.data(), 10), {}), Error);
  EXPECT_THROW(gptq_quantize(w, h, gptq_options(1, 0)), Error);
  // Group widths: one per group, 1..8, groups a multiple of 8 columns, no act-order.
  GptqOptions widths = gptq_options(3, 8);
  widths.group_bits = {3, 3};  // two widths for the one group of 8 columns
  EXPECT_THROW(gptq_quantize(w, h, widths), Error);
  const Tensor w16({4, 16}, testing::synthetic_weights(4, 16, 7));
  std::vector<double> h16(16 * 16, 0.0);
  for (int64_t j = 0; j < 16; ++j) h16[j * 16 + j] = 1.0;
  widths.group_bits = {3, 9};
  EXPECT_THROW(gptq_quantize(w16, h16, widths), Error);
  widths.group_bits = {3, 2};
  EXPECT_NO_THROW(gptq_quantize(w16, h16, widths));
  widths.act_order = true;
  EXPECT_THROW(gptq_quantize(w16, h16, widths), Error);
  widths.act_order = false;
  widths.group_size = 4;
  widths.group_bits = {3, 2, 3, 2};
  EXPECT_THROW(gptq_quantize(w16, h16, widths), Error);
  std::vector<double> bad = h;
  bad[3] = std::nan("");
  EXPECT_THROW(gptq_quantize(w, bad, {}), Error);
  // Indefinite H: a negative eigenvalue that the damping cannot fix.
  std::vector<double> neg = h;
  neg[0] = -100.0;
  try {
    gptq_quantize(w, neg, {});
    FAIL() << "indefinite Hessian accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNumeric);
  }
}

}  // namespace
}  // namespace skim::quant
