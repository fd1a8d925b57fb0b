// The decoder's logits against the naive double-precision reference (naive_llama.h) on small
// random models: default, tied head, linear and llama3 rope scaling, qwen2 attention biases.
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

// Relative max-abs error of fp32 logits against the double reference.
constexpr double kTolerance = 2e-5;  // measured 1e-6 .. 4e-6

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = dist(rng);
  return ids;
}

// Runs batch sequences through the model and returns max|ours - ref| / max|ref|.
double logits_error(const SyntheticSpec& spec, int64_t batch, int64_t seq) {
  const SyntheticSource src(spec);
  const auto model = model::LlamaModel::load(src, model::LlamaModel::Layers::kResident);
  const auto ids = random_ids(batch * seq, spec.vocab, spec.seed + 7);
  const Tensor logits = model.forward(ids.data(), batch, seq);
  EXPECT_EQ(logits.shape(), (std::vector<int64_t>{batch * seq, spec.vocab}));
  double max_err = 0, max_ref = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const std::vector<int32_t> one(ids.begin() + b * seq, ids.begin() + (b + 1) * seq);
    const Mat ref = naive_logits(src, one);
    for (int64_t s = 0; s < seq; ++s)
      for (int64_t j = 0; j < spec.vocab; ++j) {
        max_ref = std::max(max_ref, std::abs(ref[s][j]));
        max_err = std::max(max_err, std::abs(ref[s][j] - logits.at(b * seq + s, j)));
      }
  }
  ::testing::Test::RecordProperty("relative_max_abs_error",
                                  fmt::format("{:.3g}", max_err / max_ref));
  return max_err / max_ref;
}

TEST(ForwardReference, DefaultModelMatches) {
  SyntheticSpec spec;
  EXPECT_LT(logits_error(spec, 3, 37), kTolerance);
}

TEST(ForwardReference, TiedHeadMatches) {
  SyntheticSpec spec;
  spec.tied = true;
  spec.seed = 2;
  EXPECT_LT(logits_error(spec, 2, 29), kTolerance);
}

TEST(ForwardReference, LinearRopeScalingMatches) {
  SyntheticSpec spec;
  spec.seed = 3;
  spec.rope_scaling.type = RopeScaling::Type::kLinear;
  spec.rope_scaling.factor = 4.0;
  EXPECT_LT(logits_error(spec, 2, 41), kTolerance);
}

TEST(ForwardReference, Llama3RopeScalingMatches) {
  SyntheticSpec spec;
  spec.seed = 4;
  spec.heads = 2;  // head_dim 32: 16 frequencies across all three llama3 bands
  spec.kv_heads = 1;
  spec.rope_scaling.type = RopeScaling::Type::kLlama3;
  spec.rope_scaling.factor = 8.0;
  spec.rope_scaling.low_freq_factor = 1.0;
  spec.rope_scaling.high_freq_factor = 4.0;
  spec.rope_scaling.original_max_position_embeddings = 64;
  EXPECT_LT(logits_error(spec, 2, 41), kTolerance);
}

TEST(ForwardReference, Qwen2BiasesMatch) {
  SyntheticSpec spec;
  spec.seed = 5;
  spec.attention_bias = true;
  spec.kv_heads = 4;  // plain multi-head attention as well
  EXPECT_LT(logits_error(spec, 2, 23), kTolerance);
}

TEST(ForwardReference, ScalingChangesTheLogits) {
  // Guards the scaling tests against a no-op: the scaled model must differ from the unscaled one.
  SyntheticSpec plain;
  plain.seed = 4;
  SyntheticSpec scaled = plain;
  scaled.rope_scaling.type = RopeScaling::Type::kLinear;
  scaled.rope_scaling.factor = 4.0;
  const SyntheticSource a(plain), b(scaled);
  const auto ma = model::LlamaModel::load(a, model::LlamaModel::Layers::kResident);
  const auto mb = model::LlamaModel::load(b, model::LlamaModel::Layers::kResident);
  const auto ids = random_ids(20, plain.vocab, 9);
  const Tensor la = ma.forward(ids.data(), 1, 20), lb = mb.forward(ids.data(), 1, 20);
  double diff = 0;
  for (int64_t i = 0; i < la.numel(); ++i)
    diff = std::max(diff, static_cast<double>(std::abs(la.data()[i] - lb.data()[i])));
  EXPECT_GT(diff, 1e-2);
}

TEST(ForwardReference, TokenOutsideVocabularyIsBadInput) {
  SyntheticSpec spec;
  const SyntheticSource src(spec);
  const auto model = model::LlamaModel::load(src, model::LlamaModel::Layers::kResident);
  const std::vector<int32_t> ids = {1, 2, static_cast<int32_t>(spec.vocab)};
  try {
    model.forward(ids.data(), 1, 3);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  }
}

}  // namespace
}  // namespace skim::testing
