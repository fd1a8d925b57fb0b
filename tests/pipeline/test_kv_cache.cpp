// Incremental decoding with a KV cache against the full forward of the whole sequence: the same
// logits at every position whatever the chunking of the tokens (prefill of several, steps of one).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "src/model/kv_cache.h"
#include "src/model/llama_model.h"
#include "tests/model/synthetic_model.h"

namespace skim::model {
namespace {

TEST(KvCache, ChunkedStepsMatchFullForward) {
  for (bool bias : {false, true}) {
    testing::SyntheticSpec spec;
    spec.layers = 3;
    spec.attention_bias = bias;
    spec.tied = bias;
    spec.rope_theta = 500.0;  // fast rotation: a position off by one would show
    const testing::SyntheticSource source(spec);
    const LlamaModel full = LlamaModel::load(source, LlamaModel::Layers::kResident);
    const ModelConfig& c = full.config();
    std::vector<int32_t> tokens;
    for (int32_t t = 0; t < 13; ++t)
      tokens.push_back((t * 37 + 5) % static_cast<int32_t>(c.vocab_size));
    const auto n = static_cast<int64_t>(tokens.size());
    const Tensor reference = full.forward(tokens.data(), 1, n);

    KvCache cache(c, 4);  // capacity below the length: the buffers must grow
    std::vector<float> logits(static_cast<size_t>(n * c.vocab_size));
    int64_t pos = 0;
    for (int64_t chunk : {5, 1, 1, 3, 1, 2}) {
      std::vector<float> hidden(static_cast<size_t>(chunk * c.hidden_size));
      full.embed(tokens.data() + pos, chunk, hidden.data());
      for (int64_t l = 0; l < c.num_layers; ++l)
        forward_step(full.layer(l), cache.inv_freq(), cache.layer(l), hidden.data(), chunk);
      full.final_norm(hidden.data(), chunk);
      full.logits(hidden.data(), chunk, logits.data() + pos * c.vocab_size);
      pos += chunk;
      EXPECT_EQ(cache.length(), pos);
    }
    ASSERT_EQ(pos, n);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
      const double d = static_cast<double>(logits[i]) - reference.data()[i];
      diff += d * d;
      norm += static_cast<double>(reference.data()[i]) * reference.data()[i];
    }
    EXPECT_LT(std::sqrt(diff / norm), 1e-5) << "bias " << bias;
    // Every position on its own, not only in aggregate.
    for (int64_t t = 0; t < n; ++t) {
      double md = 0, mn = 0;
      for (int64_t v = 0; v < c.vocab_size; ++v) {
        const double d = logits[t * c.vocab_size + v] - reference.data()[t * c.vocab_size + v];
        md = std::max(md, std::abs(d));
        mn = std::max(mn, std::abs(static_cast<double>(reference.data()[t * c.vocab_size + v])));
      }
      EXPECT_LT(md, 1e-4 * mn) << "position " << t << " bias " << bias;
    }
    cache.clear();
    EXPECT_EQ(cache.length(), 0);
  }
}

}  // namespace
}  // namespace skim::model
