// Direct checks of the CPU decoder kernels that the forward tests reach only through the model:
// the rope frequencies of each scaling type, both rope_apply entry points, and the NLL.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/cpu/model_ops.h"
#include "tests/model/naive_llama.h"

namespace skim::testing {
namespace {

TEST(ModelOps, RopeFrequenciesMatchTheFormulas) {
  RopeScaling llama3;
  llama3.type = RopeScaling::Type::kLlama3;
  llama3.factor = 8.0;
  llama3.original_max_position_embeddings = 8192;
  RopeScaling linear;
  linear.type = RopeScaling::Type::kLinear;
  linear.factor = 2.0;
  for (const RopeScaling& s : {RopeScaling{}, linear, llama3}) {
    const auto f = kernels::rope_inv_freq(128, 500000.0, s);
    ASSERT_EQ(f.size(), 64u);
    for (int64_t i = 0; i < 64; ++i) {
      const double ref = naive_inv_freq(i, 128, 500000.0, s);
      EXPECT_NEAR(f[i] / ref, 1.0, 1e-6) << "pair " << i;
    }
  }
}

TEST(ModelOps, RopeEntryPointsAgreeAndPositionZeroIsIdentity) {
  const int64_t batch = 2, seq = 7, heads = 3, hd = 8;
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  std::vector<float> x(static_cast<size_t>(batch * seq * heads * hd));
  for (float& v : x) v = dist(rng);
  const auto freq = kernels::rope_inv_freq(hd, 10000.0, RopeScaling{});
  std::vector<float> a = x, b = x;
  kernels::rope_apply(a.data(), batch, heads, hd, kernels::rope_table(freq, seq));
  kernels::rope_apply(b.data(), batch, seq, heads, hd, freq.data());
  EXPECT_EQ(a, b);
  for (int64_t j = 0; j < heads * hd; ++j) EXPECT_EQ(a[j], x[j]);  // sequence 0, position 0
  for (int64_t j = 0; j < heads * hd; ++j)
    EXPECT_EQ(a[seq * heads * hd + j], x[seq * heads * hd + j]);  // sequence 1, position 0
}

TEST(ModelOps, NllMatchesLogSumExp) {
  const int64_t rows = 3, vocab = 50;
  std::vector<float> logits(static_cast<size_t>(rows * vocab));
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(std::sin(i * 0.7) * 30);
  const std::vector<int32_t> targets = {0, 17, 49};
  std::vector<double> nll(rows);
  kernels::log_softmax_nll(logits.data(), rows, vocab, targets.data(), nll.data());
  for (int64_t r = 0; r < rows; ++r) {
    double z = 0;
    for (int64_t j = 0; j < vocab; ++j) z += std::exp(double{logits[r * vocab + j]});
    EXPECT_NEAR(nll[r], std::log(z) - logits[r * vocab + targets[r]], 1e-9);
  }
}

TEST(ModelOps, LogSoftmaxAndKlMatchTheirDefinitions) {
  const int64_t rows = 3, vocab = 40;
  std::vector<float> a(static_cast<size_t>(rows * vocab)), b(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<float>(std::sin(i * 0.7) * 20);
    b[i] = static_cast<float>(std::sin(i * 0.7) * 20 + std::cos(i * 1.3));
  }
  std::vector<float> log_p(a.size());
  kernels::log_softmax(a.data(), rows, vocab, log_p.data());
  std::vector<double> kl(rows), self(rows);
  kernels::kl_divergence(log_p.data(), b.data(), rows, vocab, kl.data());
  kernels::kl_divergence(log_p.data(), a.data(), rows, vocab, self.data());
  for (int64_t r = 0; r < rows; ++r) {
    double za = 0, zb = 0;
    for (int64_t j = 0; j < vocab; ++j) {
      za += std::exp(double{a[r * vocab + j]});
      zb += std::exp(double{b[r * vocab + j]});
    }
    double ref = 0;
    for (int64_t j = 0; j < vocab; ++j) {
      const double lp = a[r * vocab + j] - std::log(za), lq = b[r * vocab + j] - std::log(zb);
      EXPECT_NEAR(log_p[r * vocab + j], lp, 1e-5 * std::max(1.0, std::fabs(lp)));
      ref += std::exp(lp) * (lp - lq);
    }
    EXPECT_GT(ref, 1e-3);
    EXPECT_NEAR(kl[r], ref, 1e-5 * ref);
    EXPECT_NEAR(self[r], 0.0, 1e-6);  // KL(p || p), up to the fp32 rounding of log p
  }
}

}  // namespace
}  // namespace skim::testing
