#pragma once
// Text generation with a KV cache: the prompt is run through every layer at once (prefill), then
// each new token is one incremental step (src/model/kv_cache.h), on the CPU or the GPU
// (DecodeBackend, decoder_backend.h). Greedy (argmax) by default,
// sampling from softmax(logits / temperature) otherwise. Layers stay resident: the ends from the
// source, the decoder layers from a loader (dense by default; a quantized folder passes its
// packed layers).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "src/model/llama_layer.h"
#include "src/model/llama_model.h"
#include "src/pipeline/decoder_backend.h"

namespace skim::io {
class ModelSource;
}

namespace skim::pipeline {

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  double temperature = 0.0;  // 0: greedy
  uint64_t seed = 0;
  bool stop_at_eos = true;
  Device device = Device::kCpu;  // where the layers and the head run (decoder_backend.h)
  int cuda_device = 0;
};

struct GenerateResult {
  std::vector<int32_t> prompt_ids;  // BOS included when the tokenizer adds one
  std::vector<int32_t> new_ids;
  std::string text;  // decoded new_ids
  bool stopped_at_eos = false;
  double load_seconds = 0.0;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;  // the steps after the first generated token
  double prefill_tokens_per_second() const;
  double decode_tokens_per_second() const;
};

// The token picked from logits[vocab]: the first maximum when temperature is 0, else a sample
// of softmax(logits / temperature) with uniform u in [0, 1).
int32_t pick_token(const float* logits, int64_t vocab, double temperature, double u);

class Generator {
 public:
  using LayerLoader = std::function<model::DecoderLayer(int64_t)>;
  // Loads the embedding, final norm, head and every decoder layer (through `loader` when set).
  explicit Generator(const io::ModelSource& source, const LayerLoader& loader = {});

  const model::LlamaModel& ends() const { return ends_; }
  const std::vector<model::DecoderLayer>& layers() const { return layers_; }

  // Token ids in, new ids out (EOS, when reached and options.stop_at_eos, is the last one).
  // `timings` (optional) receives prefill and decode seconds.
  std::vector<int32_t> generate(const std::vector<int32_t>& prompt, const GenerateOptions& options,
                                int32_t eos_id, GenerateResult* timings = nullptr) const;

 private:
  model::LlamaModel ends_;
  std::vector<model::DecoderLayer> layers_;
};

// Tokenizes `prompt` with the source's tokenizer (BOS in front when it asks), generates, decodes.
GenerateResult generate_text(const io::ModelSource& source, const std::string& prompt,
                             const GenerateOptions& options,
                             const Generator::LayerLoader& loader = {});

}  // namespace skim::pipeline
