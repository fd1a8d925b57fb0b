// A decoder layer on its own: equals the layer inside the full forward, matches the naive
// reference layer, is independent of how sequences are batched, hands the right inputs to the
// capture hook, and accepts a replacement linear.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "src/core/error.h"
#include "src/model/llama_model.h"
#include "tests/model/naive_llama.h"

namespace skim::testing {
namespace {

std::vector<float> random_hidden(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> h(static_cast<size_t>(n));
  for (float& x : h) x = dist(rng);
  return h;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(double{a[i]} - double{b[i]}));
  return d;
}

TEST(DecoderLayer, StreamedLayersReproduceTheFullForward) {
  SyntheticSpec spec;
  spec.layers = 3;
  const SyntheticSource src(spec);
  const auto full = model::LlamaModel::load(src, model::LlamaModel::Layers::kResident);
  const auto ends = model::LlamaModel::load(src, model::LlamaModel::Layers::kStream);
  EXPECT_FALSE(ends.layers_resident());
  const int64_t batch = 2, seq = 19;
  std::vector<int32_t> ids(static_cast<size_t>(batch * seq));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 37 + 5) % 100);

  const Tensor expected = full.forward(ids.data(), batch, seq);
  std::vector<float> hidden(static_cast<size_t>(batch * seq * spec.hidden));
  ends.embed(ids.data(), batch * seq, hidden.data());
  for (int64_t i = 0; i < spec.layers; ++i) {
    const auto layer = model::DecoderLayer::load(src, i);  // loaded alone, run alone
    EXPECT_EQ(layer.index(), i);
    layer.forward(hidden.data(), batch, seq);
  }
  ends.final_norm(hidden.data(), batch * seq);
  Tensor logits({batch * seq, spec.vocab});
  ends.logits(hidden.data(), batch * seq, logits.data());
  // Same kernels on the same data: identical bits.
  for (int64_t i = 0; i < logits.numel(); ++i) ASSERT_EQ(logits.data()[i], expected.data()[i]);
}

TEST(DecoderLayer, MatchesNaiveLayerAndIsIndependentOfBatching) {
  SyntheticSpec spec;
  const SyntheticSource src(spec);
  const auto layer = model::DecoderLayer::load(src, 1);
  const int64_t batch = 3, seq = 21, h = spec.hidden;
  const std::vector<float> input = random_hidden(batch * seq * h, 11);

  std::vector<float> together = input;
  layer.forward(together.data(), batch, seq);
  std::vector<float> apart = input;
  for (int64_t b = 0; b < batch; ++b) layer.forward(apart.data() + b * seq * h, 1, seq);
  EXPECT_LT(max_abs_diff(together, apart), 1e-5);

  double err = 0, scale = 0;
  for (int64_t b = 0; b < batch; ++b) {
    Mat hs;
    for (int64_t s = 0; s < seq; ++s) {
      const float* row = input.data() + (b * seq + s) * h;
      hs.emplace_back(row, row + h);
    }
    naive_layer(src, 1, hs);
    for (int64_t s = 0; s < seq; ++s)
      for (int64_t j = 0; j < h; ++j) {
        scale = std::max(scale, std::abs(hs[s][j]));
        err = std::max(err, std::abs(hs[s][j] - together[(b * seq + s) * h + j]));
      }
  }
  EXPECT_LT(err / scale, 1e-5);
}

TEST(DecoderLayer, CaptureHookSeesEachLinearGroupInput) {
  SyntheticSpec spec;
  spec.attention_bias = true;
  const SyntheticSource src(spec);
  const auto layer = model::DecoderLayer::load(src, 0);
  const int64_t seq = 13, h = spec.hidden;
  std::vector<float> hidden = random_hidden(seq * h, 3);
  Mat naive_h;
  for (int64_t s = 0; s < seq; ++s) naive_h.emplace_back(&hidden[s * h], &hidden[(s + 1) * h]);
  NaiveLayerTrace trace;
  naive_layer(src, 0, naive_h, &trace);

  std::vector<model::LinearGroup> order;
  std::vector<double> errors;
  layer.forward(hidden.data(), 1, seq,
                [&](model::LinearGroup group, const float* x, int64_t tokens, int64_t features) {
                  order.push_back(group);
                  const Mat* ref = nullptr;
                  switch (group) {
                    case model::LinearGroup::kQkv:
                      ref = &trace.qkv_in;
                      break;
                    case model::LinearGroup::kO:
                      ref = &trace.o_in;
                      break;
                    case model::LinearGroup::kGateUp:
                      ref = &trace.gate_up_in;
                      break;
                    case model::LinearGroup::kDown:
                      ref = &trace.down_in;
                      break;
                  }
                  EXPECT_EQ(tokens, seq);
                  EXPECT_EQ(features, static_cast<int64_t>((*ref)[0].size()));
                  double err = 0, scale = 0;
                  for (int64_t t = 0; t < tokens; ++t)
                    for (int64_t j = 0; j < features; ++j) {
                      scale = std::max(scale, std::abs((*ref)[t][j]));
                      err = std::max(err, std::abs((*ref)[t][j] - x[t * features + j]));
                    }
                  errors.push_back(err / scale);
                });
  const std::vector<model::LinearGroup> expected = {
      model::LinearGroup::kQkv, model::LinearGroup::kO, model::LinearGroup::kGateUp,
      model::LinearGroup::kDown};
  EXPECT_EQ(order, expected);
  for (double e : errors) EXPECT_LT(e, 1e-5);
}

// Delegates to another linear and counts the calls, standing in for a quantized layer.
class CountingLinear final : public model::Linear {
 public:
  CountingLinear(const model::Linear& inner, int* calls) : inner_(inner), calls_(calls) {}
  int64_t out_features() const override { return inner_.out_features(); }
  int64_t in_features() const override { return inner_.in_features(); }
  void forward(const float* x, int64_t tokens, float* y) const override {
    ++*calls_;
    inner_.forward(x, tokens, y);
  }

 private:
  const model::Linear& inner_;
  int* calls_;
};

TEST(DecoderLayer, ReplacedLinearIsUsedAndShapeChecked) {
  SyntheticSpec spec;
  const SyntheticSource src(spec);
  const auto original = model::DecoderLayer::load(src, 0);
  auto layer = model::DecoderLayer::load(src, 0);
  int calls = 0;
  layer.replace_linear(
      model::LinearKind::kDown,
      std::make_unique<CountingLinear>(original.linear(model::LinearKind::kDown), &calls));
  const std::vector<float> input = random_hidden(2 * 9 * spec.hidden, 5);
  std::vector<float> a = input, b = input;
  original.forward(a.data(), 2, 9);
  layer.forward(b.data(), 2, 9);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(a, b);
  EXPECT_THROW(layer.replace_linear(model::LinearKind::kQ,
                                    std::make_unique<CountingLinear>(
                                        original.linear(model::LinearKind::kK), &calls)),
               Error);
}

TEST(DecoderLayer, MissingTensorIsBadInputNamingIt) {
  SyntheticSpec spec;
  SyntheticSource src(spec);
  src.drop_tensor("model.layers.1.mlp.up_proj.weight");
  EXPECT_NO_THROW(model::DecoderLayer::load(src, 0));
  try {
    model::DecoderLayer::load(src, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find("model.layers.1.mlp.up_proj.weight"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace skim::testing
