#include "tests/model/synthetic_model.h"

#include <fmt/format.h>

#include <cmath>
#include <random>

#include "src/core/error.h"

namespace skim::testing {
namespace {

class ByteTokenizer final : public io::Tokenizer {
 public:
  ByteTokenizer(int64_t vocab, bool add_bos) : vocab_(vocab), add_bos_(add_bos) {}
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (unsigned char ch : text) ids.push_back(static_cast<int32_t>(ch % vocab_));
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string s;
    for (int32_t id : ids) s.push_back(static_cast<char>(id));
    return s;
  }
  int64_t vocab_size() const override { return vocab_; }
  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 2; }
  bool add_bos() const override { return add_bos_; }

 private:
  int64_t vocab_;
  bool add_bos_;
};

}  // namespace

SyntheticSource::SyntheticSource(const SyntheticSpec& spec) : add_bos_(spec.add_bos) {
  ModelConfig& c = config_;
  c.architecture = spec.attention_bias ? "qwen2" : "llama";
  c.vocab_size = spec.vocab;
  c.hidden_size = spec.hidden;
  c.intermediate_size = spec.ffn;
  c.num_layers = spec.layers;
  c.num_heads = spec.heads;
  c.num_kv_heads = spec.kv_heads;
  c.head_dim = spec.hidden / spec.heads;
  c.max_position_embeddings = spec.max_positions;
  c.rope_theta = spec.rope_theta;
  c.rope_scaling = spec.rope_scaling;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = spec.tied;
  c.attention_bias = spec.attention_bias;
  c.bos_token_id = 1;
  c.eos_token_id = 2;

  std::mt19937 rng(spec.seed);
  auto random = [&rng](std::vector<int64_t> shape, double mean, double stddev) {
    std::normal_distribution<double> dist(mean, stddev);
    Tensor t(std::move(shape));
    for (float& x : t.values()) x = static_cast<float>(dist(rng));
    return t;
  };
  auto linear = [&](const std::string& name, int64_t out, int64_t in) {
    tensors_[name] = random({out, in}, 0.0, 1.0 / std::sqrt(static_cast<double>(in)));
  };
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  tensors_["model.embed_tokens.weight"] = random({c.vocab_size, c.hidden_size}, 0.0, 1.0);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    tensors_[p + "input_layernorm.weight"] = random({c.hidden_size}, 1.0, 0.1);
    tensors_[p + "post_attention_layernorm.weight"] = random({c.hidden_size}, 1.0, 0.1);
    // Larger q/k so attention is far from uniform and masking/rotation errors would show.
    tensors_[p + "self_attn.q_proj.weight"] = random({q, c.hidden_size}, 0.0, 0.4);
    tensors_[p + "self_attn.k_proj.weight"] = random({kv, c.hidden_size}, 0.0, 0.4);
    linear(p + "self_attn.v_proj.weight", kv, c.hidden_size);
    linear(p + "self_attn.o_proj.weight", c.hidden_size, q);
    linear(p + "mlp.gate_proj.weight", c.intermediate_size, c.hidden_size);
    linear(p + "mlp.up_proj.weight", c.intermediate_size, c.hidden_size);
    linear(p + "mlp.down_proj.weight", c.hidden_size, c.intermediate_size);
    if (c.attention_bias) {
      tensors_[p + "self_attn.q_proj.bias"] = random({q}, 0.0, 0.5);
      tensors_[p + "self_attn.k_proj.bias"] = random({kv}, 0.0, 0.5);
      tensors_[p + "self_attn.v_proj.bias"] = random({kv}, 0.0, 0.5);
    }
  }
  tensors_["model.norm.weight"] = random({c.hidden_size}, 1.0, 0.1);
  if (!c.tie_word_embeddings) linear("lm_head.weight", c.vocab_size, c.hidden_size);
}

bool SyntheticSource::has_tensor(const std::string& name) const {
  return tensors_.count(name) != 0;
}

const Tensor& SyntheticSource::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail(ErrorKind::kBadInput, "<synthetic>: no tensor {}", name);
  return it->second;
}

Tensor SyntheticSource::load(const std::string& name,
                             const std::vector<int64_t>& expected_shape) const {
  const Tensor& t = tensor(name);
  if (t.shape() != expected_shape)
    fail(ErrorKind::kBadInput, "<synthetic>: tensor {} has shape {}, expected {}", name,
         t.shape_string(), shape_string(expected_shape));
  return t;
}

std::unique_ptr<io::Tokenizer> SyntheticSource::tokenizer() const {
  return std::make_unique<ByteTokenizer>(config_.vocab_size, add_bos_);
}

}  // namespace skim::testing
