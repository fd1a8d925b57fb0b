#pragma once
// The description of a LLaMA-architecture model, whatever file it came from (Hugging Face
// config.json or GGUF metadata). Plain data: io/ fills it, src/model/ reads it.
#include <cstdint>
#include <string>

namespace skim {

struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;                  // llama3 only
  double high_freq_factor = 4.0;                 // llama3 only
  int64_t original_max_position_embeddings = 0;  // llama3 only
};

struct ModelConfig {
  std::string architecture;  // "llama", "mistral", "qwen2": same decoder
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_heads unless the file says otherwise
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-5;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // qwen2 has q/k/v biases
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
};

}  // namespace skim
