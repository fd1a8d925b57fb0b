#pragma once
// Perplexity of a model on a text (docs ALGORITHMS.md section 7): tokenize the whole text (one BOS
// in front when the tokenizer asks for it), cut into non-overlapping windows of seq_len tokens
// (the incomplete tail is dropped), predict tokens 1..L-1 of each window from their prefix,
// ppl = exp(mean NLL over all predicted tokens).
//
// Memory: the decoder layers are streamed, layer-outer: the hidden states of a chunk of windows
// stay resident while each layer is loaded once, run over the chunk, and dropped. Peak memory is
// one layer plus embedding/head plus the chunk's hidden states plus one micro-batch's
// activations, whatever the model's depth; for a model whose windows all fit in one chunk every
// layer is read exactly once, as cheap as keeping the model resident.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "src/model/llama_layer.h"
#include "src/pipeline/decoder_backend.h"

namespace skim::io {
class ModelSource;
}

namespace skim::pipeline {

struct PerplexityOptions {
  int64_t seq_len = 0;
  int64_t max_windows = 0;                 // 0: every full window
  int64_t micro_batch_tokens = 4096;       // tokens per decoder-layer call (activation memory)
  int64_t chunk_bytes = int64_t{1} << 30;  // hidden states of the windows in flight
  // Layer i of the model to evaluate; defaults to DecoderLayer::load(source, i). A quantized
  // model supplies its own layers here.
  std::function<model::DecoderLayer(int64_t)> layer_loader;
  // Where the decoder layers, final norm, head and NLL run (decoder_backend.h); null: the CPU.
  DecoderBackend* backend = nullptr;
};

struct PerplexityResult {
  double perplexity = 0.0;
  double mean_nll = 0.0;
  int64_t predicted_tokens = 0;  // windows * (seq_len - 1)
  int64_t windows = 0;
  int64_t seq_len = 0;
  int64_t text_tokens = 0;  // tokens of the whole text (BOS included when added)
  bool bos_added = false;
  double seconds = 0.0;  // everything: loading, tokenizing, forward
  double layer_load_seconds = 0.0;
};

// Perplexity over already tokenized text; `text_name` names the text in errors.
PerplexityResult perplexity_of_tokens(const io::ModelSource& source,
                                      const std::vector<int32_t>& tokens,
                                      const std::string& text_name,
                                      const PerplexityOptions& options);

// Tokenizes `text` with the model's tokenizer, then perplexity_of_tokens.
PerplexityResult perplexity_of_text(const io::ModelSource& source, std::string_view text,
                                    const std::string& text_name, const PerplexityOptions& options);

// Reads the text file (kIo when unreadable), then perplexity_of_text.
PerplexityResult perplexity_of_file(const io::ModelSource& source, const std::string& text_path,
                                    const PerplexityOptions& options);

}  // namespace skim::pipeline
