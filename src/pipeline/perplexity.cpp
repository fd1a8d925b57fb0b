#include "src/pipeline/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "io/model_source.h"
#include "io/text_file.h"
#include "src/core/error.h"
#include "src/core/stopwatch.h"
#include "src/model/llama_model.h"

namespace skim::pipeline {
namespace {

using Clock = std::chrono::steady_clock;

void check_options(const io::ModelSource& source, const PerplexityOptions& options) {
  const ModelConfig& c = source.config();
  if (options.seq_len < 2)
    fail(ErrorKind::kUsage, "seq_len must be at least 2 (got {})", options.seq_len);
  if (c.max_position_embeddings > 0 && options.seq_len > c.max_position_embeddings)
    fail(ErrorKind::kUsage, "seq_len {} exceeds the model's max_position_embeddings {} ({})",
         options.seq_len, c.max_position_embeddings, source.path());
  if (options.max_windows < 0)
    fail(ErrorKind::kUsage, "max_windows must be >= 0 (got {})", options.max_windows);
  if (options.micro_batch_tokens < 1 || options.chunk_bytes < 1)
    fail(ErrorKind::kUsage, "micro_batch_tokens and chunk_bytes must be positive");
}

}  // namespace

PerplexityResult perplexity_of_tokens(const io::ModelSource& source,
                                      const std::vector<int32_t>& tokens,
                                      const std::string& text_name,
                                      const PerplexityOptions& options) {
  const auto start = Clock::now();
  check_options(source, options);
  const int64_t seq = options.seq_len;
  const int64_t available = static_cast<int64_t>(tokens.size()) / seq;
  if (available == 0)
    fail(ErrorKind::kBadInput, "{}: {} tokens, fewer than one window of seq_len {}", text_name,
         tokens.size(), seq);
  const int64_t windows =
      options.max_windows > 0 ? std::min(available, options.max_windows) : available;

  const model::LlamaModel ends =
      model::LlamaModel::load(source, model::LlamaModel::Layers::kStream);
  const ModelConfig& c = ends.config();
  const int64_t hidden = c.hidden_size;
  auto load_layer = options.layer_loader ? options.layer_loader : [&source](int64_t i) {
    return model::DecoderLayer::load(source, i);
  };

  const int64_t window_bytes = seq * hidden * static_cast<int64_t>(sizeof(float));
  const int64_t chunk_windows = std::clamp<int64_t>(options.chunk_bytes / window_bytes, 1, windows);
  const int64_t micro_windows =
      std::clamp<int64_t>(options.micro_batch_tokens / seq, 1, chunk_windows);

  const std::unique_ptr<DecoderBackend> cpu_backend =
      options.backend == nullptr ? make_cpu_decoder_backend() : nullptr;
  DecoderBackend& backend = options.backend != nullptr ? *options.backend : *cpu_backend;

  PerplexityResult result;
  double nll_sum = 0.0;
  for (int64_t w0 = 0; w0 < windows; w0 += chunk_windows) {
    const int64_t nw = std::min(chunk_windows, windows - w0);
    const int32_t* chunk_tokens = tokens.data() + w0 * seq;
    backend.embed_states(ends, chunk_tokens, nw * seq);
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const auto load_start = Clock::now();
      const model::DecoderLayer layer = load_layer(i);
      result.layer_load_seconds += seconds_since(load_start);
      backend.set_layer(layer);
      backend.run_layer(nw, seq, micro_windows, {});
    }
    nll_sum += backend.window_nll(ends, chunk_tokens, nw, seq);
  }

  result.windows = windows;
  result.seq_len = seq;
  result.predicted_tokens = windows * (seq - 1);
  result.text_tokens = static_cast<int64_t>(tokens.size());
  result.mean_nll = nll_sum / static_cast<double>(result.predicted_tokens);
  result.perplexity = std::exp(result.mean_nll);
  if (!std::isfinite(result.perplexity))
    fail(ErrorKind::kNumeric, "{}: perplexity is not finite (mean NLL {})", text_name,
         result.mean_nll);
  result.seconds = seconds_since(start);
  return result;
}

PerplexityResult perplexity_of_text(const io::ModelSource& source, std::string_view text,
                                    const std::string& text_name,
                                    const PerplexityOptions& options) {
  const auto start = Clock::now();
  check_options(source, options);
  if (text.empty()) fail(ErrorKind::kBadInput, "{}: the text is empty", text_name);
  const auto tokenizer = source.tokenizer();
  std::vector<int32_t> tokens;
  const bool bos = tokenizer->add_bos() && tokenizer->bos_id() >= 0;
  if (bos) tokens.push_back(tokenizer->bos_id());
  const std::vector<int32_t> body = tokenizer->encode(text);
  tokens.insert(tokens.end(), body.begin(), body.end());
  PerplexityResult result = perplexity_of_tokens(source, tokens, text_name, options);
  result.bos_added = bos;
  result.seconds = seconds_since(start);
  return result;
}

PerplexityResult perplexity_of_file(const io::ModelSource& source, const std::string& text_path,
                                    const PerplexityOptions& options) {
  const auto start = Clock::now();
  PerplexityResult result =
      perplexity_of_text(source, io::read_text_file(text_path, "text"), text_path, options);
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace skim::pipeline
