#pragma once
// The parts of a LLaMA model around the decoder layers: token embedding, final norm, LM head
// (tied to the embedding or not), and optionally the layers themselves. Callers that stream
// layers (perplexity, quantization) load the ends only and run DecoderLayer::load per layer.
#include <cstdint>
#include <memory>
#include <vector>

#include "src/core/model_config.h"
#include "src/core/tensor.h"
#include "src/model/linear.h"
#include "src/model/llama_layer.h"

namespace skim::io {
class ModelSource;
}

namespace skim::model {

class LlamaModel {
 public:
  enum class Layers { kStream, kResident };

  // Embedding, final norm and head; with kResident also every decoder layer.
  static LlamaModel load(const io::ModelSource& source, Layers layers);

  LlamaModel(const ModelConfig& config, std::shared_ptr<const Tensor> embedding, Tensor final_norm,
             std::unique_ptr<Linear> head, std::vector<DecoderLayer> layers);

  const ModelConfig& config() const { return config_; }
  bool layers_resident() const { return !layers_.empty(); }
  const DecoderLayer& layer(int64_t i) const;  // resident layers only

  // hidden[t] = embedding[tokens[t]]; a token outside the vocabulary throws kBadInput.
  void embed(const int32_t* tokens, int64_t count, float* hidden) const;
  // Throws kBadInput, naming the position, for a token outside the vocabulary (embed's check, for
  // a device that looks the rows up itself).
  void check_tokens(const int32_t* tokens, int64_t count) const;
  const Tensor& embedding() const { return *embedding_; }  // [vocab, hidden_size]
  // In place final RMSNorm over [tokens, hidden_size].
  void final_norm(float* hidden, int64_t tokens) const;
  // logits [tokens, vocab] of normed hidden states [tokens, hidden_size].
  void logits(const float* normed, int64_t tokens, float* logits) const;
  const Linear& head() const { return *head_; }
  const Tensor& final_norm_weight() const { return final_norm_; }

  // Full forward of resident layers: logits [batch * seq, vocab] for token ids [batch * seq].
  Tensor forward(const int32_t* tokens, int64_t batch, int64_t seq) const;

 private:
  ModelConfig config_;
  std::shared_ptr<const Tensor> embedding_;
  Tensor final_norm_;
  std::unique_ptr<Linear> head_;
  std::vector<DecoderLayer> layers_;
};

}  // namespace skim::model
