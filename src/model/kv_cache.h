#pragma once
// Incremental decoding: a decoder layer run on new tokens of one sequence, attending to the keys
// and values of the earlier tokens kept in a cache, so a generated token costs O(context) instead
// of a full forward over the whole context. Numerically the same operations as
// DecoderLayer::forward (same kernels for norms and MLP, rotary angles computed the same way).
#include <cstdint>
#include <vector>

#include "src/core/model_config.h"
#include "src/model/llama_layer.h"

namespace skim::model {

// Keys (rotary applied) and values of one layer for positions [0, length), each row
// [kv_heads * head_dim].
struct LayerKvCache {
  std::vector<float> keys;
  std::vector<float> values;
  int64_t length = 0;
};

class KvCache {
 public:
  // `capacity` tokens are reserved up front (more grow the buffers).
  KvCache(const ModelConfig& config, int64_t capacity);

  LayerKvCache& layer(int64_t i) { return layers_[static_cast<size_t>(i)]; }
  int64_t length() const { return layers_.empty() ? 0 : layers_.front().length; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  void clear();

 private:
  std::vector<LayerKvCache> layers_;
  std::vector<float> inv_freq_;
};

// Runs `layer` on `tokens` new tokens at positions cache.length .. cache.length + tokens - 1 of
// one sequence: hidden [tokens, hidden_size] is updated in place, and their keys and values are
// appended to `cache`. `inv_freq` is the layer's rotary table (KvCache::inv_freq).
void forward_step(const DecoderLayer& layer, const std::vector<float>& inv_freq,
                  LayerKvCache& cache, float* hidden, int64_t tokens);

}  // namespace skim::model
