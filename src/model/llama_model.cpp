#include "src/model/llama_model.h"

#include <cstring>
#include <utility>

#include "io/model_source.h"
#include "kernels/cpu/model_ops.h"
#include "src/core/error.h"

namespace skim::model {

LlamaModel LlamaModel::load(const io::ModelSource& source, Layers layers) {
  const ModelConfig& c = source.config();
  if (c.hidden_size <= 0 || c.vocab_size <= 0 || c.num_layers <= 0 || c.num_heads <= 0 ||
      c.num_kv_heads <= 0 || c.head_dim <= 0 || c.head_dim % 2 != 0 ||
      c.num_heads % c.num_kv_heads != 0)
    fail(ErrorKind::kBadInput,
         "{}: unusable model config (hidden {}, vocab {}, layers {}, heads {}, kv heads {}, head "
         "dim {})",
         source.path(), c.hidden_size, c.vocab_size, c.num_layers, c.num_heads, c.num_kv_heads,
         c.head_dim);
  auto embedding = std::make_shared<const Tensor>(
      source.load("model.embed_tokens.weight", {c.vocab_size, c.hidden_size}));
  Tensor norm = source.load("model.norm.weight", {c.hidden_size});
  std::unique_ptr<Linear> head;
  // A file may ship lm_head even when tied; an untied config without lm_head is an error.
  if (!c.tie_word_embeddings || source.has_tensor("lm_head.weight"))
    head =
        std::make_unique<DenseLinear>(source.load("lm_head.weight", {c.vocab_size, c.hidden_size}));
  else
    head = std::make_unique<DenseLinear>(embedding);
  std::vector<DecoderLayer> decoder;
  if (layers == Layers::kResident) {
    decoder.reserve(static_cast<size_t>(c.num_layers));
    for (int64_t i = 0; i < c.num_layers; ++i) decoder.push_back(DecoderLayer::load(source, i));
  }
  return LlamaModel(c, std::move(embedding), std::move(norm), std::move(head), std::move(decoder));
}

LlamaModel::LlamaModel(const ModelConfig& config, std::shared_ptr<const Tensor> embedding,
                       Tensor final_norm, std::unique_ptr<Linear> head,
                       std::vector<DecoderLayer> layers)
    : config_(config),
      embedding_(std::move(embedding)),
      final_norm_(std::move(final_norm)),
      head_(std::move(head)),
      layers_(std::move(layers)) {
  SKIM_ASSERT(embedding_ && embedding_->numel() == config_.vocab_size * config_.hidden_size);
  SKIM_ASSERT(final_norm_.numel() == config_.hidden_size);
  SKIM_ASSERT(head_ && head_->in_features() == config_.hidden_size &&
              head_->out_features() == config_.vocab_size);
}

const DecoderLayer& LlamaModel::layer(int64_t i) const {
  if (i < 0 || i >= static_cast<int64_t>(layers_.size()))
    fail(ErrorKind::kInternal, "decoder layer {} is not resident ({} loaded)", i, layers_.size());
  return layers_[static_cast<size_t>(i)];
}

void LlamaModel::check_tokens(const int32_t* tokens, int64_t count) const {
  for (int64_t t = 0; t < count; ++t)
    if (tokens[t] < 0 || tokens[t] >= config_.vocab_size)
      fail(ErrorKind::kBadInput, "token id {} at position {} is outside the vocabulary of {}",
           tokens[t], t, config_.vocab_size);
}

void LlamaModel::embed(const int32_t* tokens, int64_t count, float* hidden) const {
  check_tokens(tokens, count);
  const int64_t h = config_.hidden_size;
  for (int64_t t = 0; t < count; ++t)
    std::memcpy(hidden + t * h, embedding_->data() + static_cast<int64_t>(tokens[t]) * h,
                static_cast<size_t>(h) * sizeof(float));
}

void LlamaModel::final_norm(float* hidden, int64_t tokens) const {
  kernels::rmsnorm(hidden, final_norm_.data(), tokens, config_.hidden_size, config_.rms_norm_eps,
                   hidden);
}

void LlamaModel::logits(const float* normed, int64_t tokens, float* logits) const {
  head_->forward(normed, tokens, logits);
}

Tensor LlamaModel::forward(const int32_t* tokens, int64_t batch, int64_t seq) const {
  if (!layers_resident()) fail(ErrorKind::kInternal, "LlamaModel::forward needs resident layers");
  const int64_t n = batch * seq;
  std::vector<float> hidden(static_cast<size_t>(n * config_.hidden_size));
  embed(tokens, n, hidden.data());
  for (const DecoderLayer& l : layers_) l.forward(hidden.data(), batch, seq);
  final_norm(hidden.data(), n);
  Tensor out({n, config_.vocab_size});
  logits(hidden.data(), n, out.data());
  return out;
}

}  // namespace skim::model
