#pragma once
// A model on disk, whatever its format: config, tokenizer, and every tensor by its Hugging Face
// name, dequantized to fp32 in Hugging Face layout (linear weights [out_features, in_features]).
// Tensor names: model.embed_tokens.weight, model.layers.{i}.input_layernorm.weight,
// model.layers.{i}.self_attn.{q,k,v,o}_proj.weight (and q/k/v .bias for qwen2),
// model.layers.{i}.post_attention_layernorm.weight,
// model.layers.{i}.mlp.{gate,up,down}_proj.weight, model.norm.weight, lm_head.weight (absent when
// the embeddings are tied).
#include <memory>
#include <string>
#include <vector>

#include "io/tokenizer.h"
#include "src/core/model_config.h"
#include "src/core/tensor.h"

namespace skim::io {

class ModelSource {
 public:
  virtual ~ModelSource() = default;
  virtual const ModelConfig& config() const = 0;
  virtual bool has_tensor(const std::string& name) const = 0;
  // The tensor, checked against `expected_shape` and for NaN/Inf; a missing tensor, a wrong
  // shape or a non-finite value throws kBadInput naming the tensor and the file.
  virtual Tensor load(const std::string& name,
                      const std::vector<int64_t>& expected_shape) const = 0;
  virtual std::unique_ptr<Tokenizer> tokenizer() const = 0;
  // Writes the model's tokenizer files (tokenizer.json or tokenizer.model, plus
  // tokenizer_config.json) into the existing `folder`; throws on failure. The default throws
  // kBadInput: a source that cannot export its tokenizer.
  virtual void write_tokenizer(const std::string& folder) const;
  virtual std::string path() const = 0;
};

// A GGUF file, or a Hugging Face folder (config.json, *.safetensors, tokenizer.json or
// tokenizer.model).
std::unique_ptr<ModelSource> open_model(const std::string& path);
std::unique_ptr<ModelSource> open_gguf_model(const std::string& path);
std::unique_ptr<ModelSource> open_hf_model(const std::string& folder);

// The weights of a Hugging Face folder: model.safetensors.index.json, model.safetensors, or the
// folder's only .safetensors file; kBadInput otherwise.
std::string hf_weights_path(const std::string& folder);

}  // namespace skim::io
