#pragma once
// One LLaMA decoder layer (also mistral / qwen2): pre-norm attention with rotary embeddings and
// grouped-query heads, then a pre-norm SwiGLU MLP, each added to the residual stream.
// It runs on its own over a batch of hidden states, so the quantizer can stream the model layer
// by layer and capture the input of every linear group.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "src/core/model_config.h"
#include "src/core/tensor.h"
#include "src/model/linear.h"

namespace skim::io {
class ModelSource;
}

namespace skim::model {

// The linear layers of a decoder layer, in Hugging Face naming.
enum class LinearKind { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kLinearKindCount = 7;
inline constexpr std::array<LinearKind, kLinearKindCount> kLinearKinds = {
    LinearKind::kQ,    LinearKind::kK,  LinearKind::kV,   LinearKind::kO,
    LinearKind::kGate, LinearKind::kUp, LinearKind::kDown};
const char* linear_kind_name(LinearKind kind);  // "self_attn.q_proj", "mlp.down_proj", ...

// [out_features, in_features] of a linear's weight under `config`.
struct LinearShape {
  int64_t out;
  int64_t in;
};
LinearShape linear_shape(const ModelConfig& config, LinearKind kind);

// Linears that read the same input share one group (and one Hessian).
enum class LinearGroup { kQkv, kO, kGateUp, kDown };
inline constexpr int kLinearGroupCount = 4;
LinearGroup linear_group(LinearKind kind);

// Called with the input of each linear group: x is [tokens, features] row-major, valid only
// during the call. forward() calls it once per group per call, in the order qkv, o, gate/up, down.
using CaptureHook =
    std::function<void(LinearGroup group, const float* x, int64_t tokens, int64_t features)>;

class DecoderLayer {
 public:
  // Takes ownership of the seven linears (indexed by LinearKind) and the two norm weights.
  DecoderLayer(const ModelConfig& config, int64_t index,
               std::vector<std::unique_ptr<Linear>> linears, Tensor input_norm,
               Tensor post_attention_norm);

  // Layer `index` of `source`, dense fp32; throws kBadInput naming a missing or misshaped tensor.
  static DecoderLayer load(const io::ModelSource& source, int64_t index);

  int64_t index() const { return index_; }
  const ModelConfig& config() const { return config_; }
  const Tensor& input_norm() const { return input_norm_; }
  const Tensor& post_attention_norm() const { return post_attention_norm_; }
  const Linear& linear(LinearKind kind) const { return *linears_[static_cast<size_t>(kind)]; }
  // Swaps in another implementation (a quantized layer) of the same shape; returns the one it
  // replaces.
  std::unique_ptr<Linear> replace_linear(LinearKind kind, std::unique_ptr<Linear> linear);

  // hidden [batch * seq, hidden_size] is updated in place; each sequence starts at position 0.
  void forward(float* hidden, int64_t batch, int64_t seq, const CaptureHook& capture = {}) const;

 private:
  ModelConfig config_;
  int64_t index_;
  std::vector<std::unique_ptr<Linear>> linears_;
  Tensor input_norm_;
  Tensor post_attention_norm_;
  std::vector<float> inv_freq_;
};

}  // namespace skim::model
