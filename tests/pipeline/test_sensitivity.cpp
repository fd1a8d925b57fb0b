// Each linear's measured sensitivity (src/pipeline/sensitivity.h) against an independent
// reference: the naive double-precision forward of the whole model (naive_llama.h) with that one
// weight replaced, the KL of its next-token distributions computed from the logits, and the error
// as the quadratic form dW H dW^T summed in double.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "comm/backends.h"
#include "src/pipeline/sensitivity.h"
#include "src/quant/hessian.h"
#include "src/quant/lut_layer.h"
#include "src/quant/skim_layer.h"
#include "tests/model/naive_llama.h"

namespace skim::testing {
namespace {

Tensor random_spd(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  Tensor x({2 * n, n});
  for (float& v : x.values()) v = dist(rng);
  Tensor h({n, n});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t t = 0; t < 2 * n; ++t) s += double{x.at(t, i)} * x.at(t, j);
      h.at(i, j) = static_cast<float>(s / (2 * n));
    }
  return h;
}

double naive_kl(const Vec& p_logits, const Vec& q_logits) {
  const auto log_softmax = [](const Vec& z) {
    double mx = -1e300, sum = 0;
    for (double v : z) mx = std::max(mx, v);
    for (double v : z) sum += std::exp(v - mx);
    Vec out;
    for (double v : z) out.push_back(v - mx - std::log(sum));
    return out;
  };
  const Vec lp = log_softmax(p_logits), lq = log_softmax(q_logits);
  double kl = 0;
  for (size_t j = 0; j < lp.size(); ++j) kl += std::exp(lp[j]) * (lp[j] - lq[j]);
  return kl;
}

TEST(Sensitivity, MatchesTheNaiveForwardOfEachReplacedLinear) {
  SyntheticSpec spec;
  spec.layers = 2;
  spec.attention_bias = true;
  const SyntheticSource src(spec);
  const ModelConfig& c = src.config();
  const int64_t windows = 2, seq = 6;
  std::vector<int32_t> tokens;
  for (int64_t t = 0; t < windows * seq; ++t)
    tokens.push_back(static_cast<int32_t>((t * 37 + 5) % c.vocab_size));

  pipeline::QuantizeOptions options;
  pipeline::SensitivityInput in;
  in.tokens = tokens.data();
  in.windows = windows;
  in.seq = seq;
  in.bits = 2;
  in.hessian = [&](int64_t layer, model::LinearGroup g) {
    const int64_t width = g == model::LinearGroup::kO      ? c.num_heads * c.head_dim
                          : g == model::LinearGroup::kDown ? c.intermediate_size
                                                           : c.hidden_size;
    return random_spd(width, static_cast<uint32_t>(10 * layer + static_cast<int>(g)));
  };
  int64_t layers_done = 0;
  in.after_layer = [&](int64_t l) { EXPECT_EQ(l, layers_done++); };
  auto comm = comm::make_local_communicator();
  const auto got = pipeline::measure_sensitivity(*comm, src, in, options);
  ASSERT_EQ(got.size(), static_cast<size_t>(c.num_layers * model::kLinearKindCount));
  EXPECT_EQ(layers_done, c.num_layers);

  std::vector<Mat> base_logits;
  for (int64_t w = 0; w < windows; ++w)
    base_logits.push_back(naive_logits(
        src, std::vector<int32_t>(tokens.begin() + w * seq, tokens.begin() + (w + 1) * seq)));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    for (int k = 0; k < model::kLinearKindCount; ++k) {
      const auto kind = model::kLinearKinds[static_cast<size_t>(k)];
      const std::string name =
          fmt::format("model.layers.{}.{}.weight", l, model::linear_kind_name(kind));
      const Tensor& w = src.tensor(name);
      Tensor h = in.hessian(l, model::linear_group(kind));
      quant::damp_hessian(h, options.damp);
      const Tensor w_hat = quant::dequantize(quant::quantize_kmeans_layer(w, h, in.bits));
      double error = 0;
      for (int64_t i = 0; i < w.dim(0); ++i)
        for (int64_t a = 0; a < w.dim(1); ++a)
          for (int64_t b = 0; b < w.dim(1); ++b)
            error += (double{w.at(i, a)} - w_hat.at(i, a)) * h.at(a, b) *
                     (double{w.at(i, b)} - w_hat.at(i, b));
      SyntheticSource perturbed(spec);
      perturbed.set_tensor(name, w_hat);
      double kl = 0;
      for (int64_t w_i = 0; w_i < windows; ++w_i) {
        const Mat q = naive_logits(
            perturbed,
            std::vector<int32_t>(tokens.begin() + w_i * seq, tokens.begin() + (w_i + 1) * seq));
        for (int64_t t = 0; t < seq; ++t) kl += naive_kl(base_logits[w_i][t], q[t]);
      }
      kl /= static_cast<double>(windows * seq);
      const auto& s = got[static_cast<size_t>(l * model::kLinearKindCount + k)];
      SCOPED_TRACE(name);
      ASSERT_GT(kl, 0.0);
      // fp32 forward against double: a relative 1e-3 on the KL, 1e-5 on the quadratic form.
      EXPECT_NEAR(s.kl, kl, 1e-3 * kl);
      EXPECT_NEAR(s.error, error, 1e-5 * error);
      EXPECT_NEAR(s.weight(), kl / error, 2e-3 * kl / error);
    }
  }
}

}  // namespace
}  // namespace skim::testing
