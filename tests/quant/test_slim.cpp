#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "src/core/error.h"
#include "src/quant/slim.h"
#include "tests/quant/naive_gptq.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

using testing::Mat;

TEST(Slim, GroupBitsByHand) {
  // Four full groups of 16 columns and a last group of 8; salience 5, 1, 3, 9 (and 2).
  const std::vector<double> salience = {5, 1, 3, 9, 2};
  const int64_t cols = 72, gs = 16;
  EXPECT_EQ(slim_group_bits(salience, cols, gs, 3, 0), (std::vector<uint8_t>{3, 3, 3, 3, 3}));
  EXPECT_EQ(slim_group_bits(salience, cols, gs, 3, 1), (std::vector<uint8_t>{3, 2, 3, 4, 3}));
  EXPECT_EQ(slim_group_bits(salience, cols, gs, 3, 2), (std::vector<uint8_t>{4, 2, 2, 4, 3}));
  // Equal salience: the lower index counts as more salient.
  const std::vector<double> flat = {1, 1, 1, 1, 1};
  EXPECT_EQ(slim_group_bits(flat, cols, gs, 2, 1), (std::vector<uint8_t>{3, 2, 2, 1, 2}));
  EXPECT_THROW(slim_group_bits(salience, cols, gs, 3, 3), Error);  // more than half the groups
}

TEST(Slim, CandidatesByHand) {
  EXPECT_EQ(slim_candidates(0, 8), (std::vector<int64_t>{0}));
  EXPECT_EQ(slim_candidates(4, 8), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(slim_candidates(15, 8), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  // 32 groups: round(k * 16 / 7) for k = 0..7.
  EXPECT_EQ(slim_candidates(32, 8), (std::vector<int64_t>{0, 2, 5, 7, 9, 11, 14, 16}));
  EXPECT_EQ(slim_candidates(32, 2), (std::vector<int64_t>{0, 16}));
}

struct Layer {
  int64_t m, n;
  std::vector<float> w;
  std::vector<double> h;
};

// A synthetic layer with one dead input channel and a few groups of columns made more salient,
// so the candidates' errors differ clearly.
Layer make_layer(int64_t m, int64_t n, uint64_t seed) {
  testing::SyntheticLayer s = testing::make_synthetic_layer(m, n, seed);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 32; j < 64; ++j) s.w[i * n + j] *= 3.0f;
  const int64_t dead = 70;
  for (int64_t k = 0; k < n; ++k) s.h[dead * n + k] = s.h[k * n + dead] = 0.0;
  // The pipeline holds H in fp32: the reference sees the same values.
  for (double& v : s.h) v = static_cast<float>(v);
  return {m, n, s.w, s.h};
}

Tensor hessian(const Layer& l) {
  return Tensor({l.n, l.n}, std::vector<float>(l.h.begin(), l.h.end()));
}

// The reference: salience from the textbook factor, every N quantized by the naive GPTQ.
struct Reference {
  std::vector<double> salience;
  std::vector<std::vector<int>> widths;  // per candidate N = 0, 1, ...
  std::vector<double> errors;
};

Reference reference(const Layer& l, int bits, int64_t gs) {
  const int64_t n = l.n, groups = (n + gs - 1) / gs, full = n / gs;
  std::vector<int64_t> identity(n);
  std::iota(identity.begin(), identity.end(), 0);
  const Mat u = testing::naive_inverse_cholesky(l.h, n, identity, 0.01);
  Reference r;
  r.salience.assign(groups, 0.0);
  for (int64_t i = 0; i < l.m; ++i)
    for (int64_t j = 0; j < n; ++j)
      if (l.h[j * n + j] != 0.0) {
        const double d = u[j * n + j];
        r.salience[j / gs] += static_cast<double>(l.w[i * n + j]) * l.w[i * n + j] / (d * d);
      }
  std::vector<int64_t> by_salience(full);
  std::iota(by_salience.begin(), by_salience.end(), 0);
  std::stable_sort(by_salience.begin(), by_salience.end(),
                   [&](int64_t a, int64_t b) { return r.salience[a] > r.salience[b]; });
  for (int64_t moved = 0; 2 * moved <= full; ++moved) {
    std::vector<int> widths(groups, bits);
    for (int64_t k = 0; k < moved; ++k) {
      widths[by_salience[k]] = bits + 1;
      widths[by_salience[full - 1 - k]] = bits - 1;
    }
    const Mat q = testing::naive_gptq(l.w, l.h, l.m, n,
                                      {.bits = bits,
                                       .group_size = gs,
                                       .act_order = false,
                                       .damp = 0.01,
                                       .group_bits = widths,
                                       .clip = true});
    std::vector<float> qf(q.begin(), q.end());
    r.errors.push_back(testing::full_error(l.w, Tensor({l.m, n}, qf), l.h, l.m, n));
    r.widths.push_back(widths);
  }
  return r;
}

TEST(Slim, ChoosesTheSplitOfLeastOutputErrorAgainstNaiveReference) {
  for (int bits : {2, 3, 4}) {
    const int64_t gs = 32;
    const Layer l = make_layer(40, 5 * gs + 16, 31 + bits);  // 5 full groups and one of 16
    const Reference ref = reference(l, bits, gs);
    WholeRows whole(l.m);
    const SlimResult got =
        slim_quantize(Tensor({l.m, l.n}, l.w), hessian(l), {.bits = bits, .group_size = gs}, whole);
    SCOPED_TRACE(::testing::Message() << "bits " << bits << " chose N = " << got.moved_groups);

    const std::vector<double> salience =
        slim_group_salience(Tensor({l.m, l.n}, l.w), gptq_factor(l.h, l.n, 0.01, false), gs, whole);
    ASSERT_EQ(salience.size(), ref.salience.size());
    for (size_t g = 0; g < salience.size(); ++g)
      EXPECT_NEAR(salience[g], ref.salience[g], 1e-5 * ref.salience[g]) << "group " << g;

    // The errors of the candidates differ, so choosing matters; the chosen one is the least.
    const double best = *std::min_element(ref.errors.begin(), ref.errors.end());
    const double worst = *std::max_element(ref.errors.begin(), ref.errors.end());
    EXPECT_GT(worst, 1.01 * best);
    ASSERT_LT(got.moved_groups, static_cast<int64_t>(ref.errors.size()));
    EXPECT_LE(ref.errors[got.moved_groups], best * (1 + 1e-4));
    EXPECT_NEAR(got.error, ref.errors[got.moved_groups], 1e-4 * ref.errors[got.moved_groups]);

    // Its widths are the reference's for that N, and the average width is exactly `bits`.
    const std::vector<int>& widths = ref.widths[got.moved_groups];
    ASSERT_EQ(got.layer.group_bits.size(), widths.size());
    int64_t code_bits = 0;
    for (size_t g = 0; g < widths.size(); ++g) {
      EXPECT_EQ(got.layer.group_bits[g], widths[g]) << "group " << g;
      code_bits += got.layer.group_width(static_cast<int64_t>(g)) *
                   (std::min<int64_t>(l.n, (g + 1) * gs) - g * gs);
    }
    EXPECT_EQ(code_bits, bits * l.n);
  }
}

TEST(Slim, NeverWorseThanGptqWithTheSameGroups) {
  // N = 0 is among the candidates, so the chosen split is at most plain grouped GPTQ's error
  // (with the clipping search), at the same stored bits but the 8 per group width.
  const int64_t gs = 32;
  const Layer l = make_layer(64, 8 * gs, 41);
  WholeRows whole(l.m);
  const SlimResult s =
      slim_quantize(Tensor({l.m, l.n}, l.w), hessian(l), {.bits = 3, .group_size = gs}, whole);
  GptqOptions g;
  g.bits = 3;
  g.group_size = gs;
  g.clip_search = true;
  const Tensor w({l.m, l.n}, l.w);
  const double e_gptq =
      testing::full_error(l.w, dequantize(gptq_quantize(w, l.h, g)), l.h, l.m, l.n);
  EXPECT_LE(s.error, e_gptq * (1 + 1e-5));
  EXPECT_GT(s.moved_groups, 0);  // the salient columns 32..63 make a split pay here
}

TEST(Slim, RejectsBadOptions) {
  const Layer l = make_layer(8, 96, 5);
  WholeRows whole(l.m);
  const Tensor w({l.m, l.n}, l.w), h = hessian(l);
  EXPECT_THROW(slim_quantize(w, h, {.bits = 1, .group_size = 32}, whole), Error);
  EXPECT_THROW(slim_quantize(w, h, {.bits = 8, .group_size = 32}, whole), Error);
  EXPECT_THROW(slim_quantize(w, h, {.bits = 3, .group_size = 12}, whole), Error);
  EXPECT_THROW(slim_quantize(w, Tensor({8, 8}), {.bits = 3, .group_size = 32}, whole), Error);
}

}  // namespace
}  // namespace skim::quant
