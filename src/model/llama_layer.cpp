#include "src/model/llama_layer.h"

#include <fmt/format.h>

#include <memory>
#include <string>
#include <utility>

#include "io/model_source.h"
#include "kernels/cpu/model_ops.h"
#include "src/core/error.h"

namespace skim::model {

const char* linear_kind_name(LinearKind kind) {
  switch (kind) {
    case LinearKind::kQ:
      return "self_attn.q_proj";
    case LinearKind::kK:
      return "self_attn.k_proj";
    case LinearKind::kV:
      return "self_attn.v_proj";
    case LinearKind::kO:
      return "self_attn.o_proj";
    case LinearKind::kGate:
      return "mlp.gate_proj";
    case LinearKind::kUp:
      return "mlp.up_proj";
    case LinearKind::kDown:
      return "mlp.down_proj";
  }
  return "?";
}

LinearGroup linear_group(LinearKind kind) {
  switch (kind) {
    case LinearKind::kQ:
    case LinearKind::kK:
    case LinearKind::kV:
      return LinearGroup::kQkv;
    case LinearKind::kO:
      return LinearGroup::kO;
    case LinearKind::kGate:
    case LinearKind::kUp:
      return LinearGroup::kGateUp;
    case LinearKind::kDown:
      return LinearGroup::kDown;
  }
  return LinearGroup::kQkv;
}

LinearShape linear_shape(const ModelConfig& c, LinearKind kind) {
  const int64_t q = c.num_heads * c.head_dim;
  const int64_t kv = c.num_kv_heads * c.head_dim;
  switch (kind) {
    case LinearKind::kQ:
      return {q, c.hidden_size};
    case LinearKind::kK:
    case LinearKind::kV:
      return {kv, c.hidden_size};
    case LinearKind::kO:
      return {c.hidden_size, q};
    case LinearKind::kGate:
    case LinearKind::kUp:
      return {c.intermediate_size, c.hidden_size};
    case LinearKind::kDown:
      return {c.hidden_size, c.intermediate_size};
  }
  return {0, 0};
}

DecoderLayer::DecoderLayer(const ModelConfig& config, int64_t index,
                           std::vector<std::unique_ptr<Linear>> linears, Tensor input_norm,
                           Tensor post_attention_norm)
    : config_(config),
      index_(index),
      linears_(std::move(linears)),
      input_norm_(std::move(input_norm)),
      post_attention_norm_(std::move(post_attention_norm)) {
  SKIM_ASSERT(linears_.size() == kLinearKindCount);
  for (int k = 0; k < kLinearKindCount; ++k) {
    const auto kind = static_cast<LinearKind>(k);
    const LinearShape s = linear_shape(config_, kind);
    SKIM_ASSERT(linears_[static_cast<size_t>(k)] != nullptr);
    SKIM_ASSERT(linears_[static_cast<size_t>(k)]->out_features() == s.out &&
                linears_[static_cast<size_t>(k)]->in_features() == s.in);
  }
  SKIM_ASSERT(input_norm_.numel() == config_.hidden_size);
  SKIM_ASSERT(post_attention_norm_.numel() == config_.hidden_size);
  SKIM_ASSERT(config_.num_kv_heads > 0 && config_.num_heads % config_.num_kv_heads == 0);
  inv_freq_ = kernels::rope_inv_freq(config_.head_dim, config_.rope_theta, config_.rope_scaling);
}

DecoderLayer DecoderLayer::load(const io::ModelSource& source, int64_t index) {
  const ModelConfig& c = source.config();
  if (index < 0 || index >= c.num_layers)
    fail(ErrorKind::kInternal, "layer {} out of range [0, {}) in {}", index, c.num_layers,
         source.path());
  const std::string prefix = fmt::format("model.layers.{}.", index);
  std::vector<std::unique_ptr<Linear>> linears;
  for (int k = 0; k < kLinearKindCount; ++k) {
    const auto kind = static_cast<LinearKind>(k);
    const LinearShape s = linear_shape(c, kind);
    const std::string name = prefix + linear_kind_name(kind);
    Tensor w = source.load(name + ".weight", {s.out, s.in});
    Tensor b;
    if (c.attention_bias && linear_group(kind) == LinearGroup::kQkv)
      b = source.load(name + ".bias", {s.out});
    linears.push_back(std::make_unique<DenseLinear>(std::move(w), std::move(b)));
  }
  Tensor in_norm = source.load(prefix + "input_layernorm.weight", {c.hidden_size});
  Tensor post_norm = source.load(prefix + "post_attention_layernorm.weight", {c.hidden_size});
  return DecoderLayer(c, index, std::move(linears), std::move(in_norm), std::move(post_norm));
}

std::unique_ptr<Linear> DecoderLayer::replace_linear(LinearKind kind,
                                                     std::unique_ptr<Linear> linear) {
  const LinearShape s = linear_shape(config_, kind);
  if (!linear || linear->out_features() != s.out || linear->in_features() != s.in)
    fail(ErrorKind::kInternal, "layer {} {}: replacement must be [{}, {}]", index_,
         linear_kind_name(kind), s.out, s.in);
  std::swap(linears_[static_cast<size_t>(kind)], linear);
  return linear;
}

void DecoderLayer::forward(float* hidden, int64_t batch, int64_t seq,
                           const CaptureHook& capture) const {
  const ModelConfig& c = config_;
  const int64_t tokens = batch * seq;
  const int64_t h = c.hidden_size;
  const int64_t q_width = c.num_heads * c.head_dim;
  const int64_t kv_width = c.num_kv_heads * c.head_dim;
  const int64_t ffn = c.intermediate_size;
  // Every element of these is written before it is read: no zero fill.
  auto buffer = [](int64_t n) {
    return std::make_unique_for_overwrite<float[]>(static_cast<size_t>(n));
  };

  // Attention block.
  auto normed = buffer(tokens * h);
  kernels::rmsnorm(hidden, input_norm_.data(), tokens, h, c.rms_norm_eps, normed.get());
  if (capture) capture(LinearGroup::kQkv, normed.get(), tokens, h);
  auto q = buffer(tokens * q_width), k = buffer(tokens * kv_width), v = buffer(tokens * kv_width);
  linear(LinearKind::kQ).forward(normed.get(), tokens, q.get());
  linear(LinearKind::kK).forward(normed.get(), tokens, k.get());
  linear(LinearKind::kV).forward(normed.get(), tokens, v.get());
  const kernels::RopeTable rope = kernels::rope_table(inv_freq_, seq);
  kernels::rope_apply(q.get(), batch, c.num_heads, c.head_dim, rope);
  kernels::rope_apply(k.get(), batch, c.num_kv_heads, c.head_dim, rope);
  auto attn = buffer(tokens * q_width);
  kernels::causal_attention(q.get(), k.get(), v.get(), batch, seq, c.num_heads, c.num_kv_heads,
                            c.head_dim, attn.get());
  q.reset();
  k.reset();
  v.reset();
  if (capture) capture(LinearGroup::kO, attn.get(), tokens, q_width);
  linear(LinearKind::kO).forward_add(attn.get(), tokens, hidden);
  attn.reset();

  // MLP block.
  kernels::rmsnorm(hidden, post_attention_norm_.data(), tokens, h, c.rms_norm_eps, normed.get());
  if (capture) capture(LinearGroup::kGateUp, normed.get(), tokens, h);
  auto gate = buffer(tokens * ffn), up = buffer(tokens * ffn);
  linear(LinearKind::kGate).forward(normed.get(), tokens, gate.get());
  linear(LinearKind::kUp).forward(normed.get(), tokens, up.get());
  kernels::silu_mul(gate.get(), up.get(), tokens * ffn);
  up.reset();
  if (capture) capture(LinearGroup::kDown, gate.get(), tokens, ffn);
  linear(LinearKind::kDown).forward_add(gate.get(), tokens, hidden);
}

}  // namespace skim::model
