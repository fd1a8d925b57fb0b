#include "src/pipeline/generate.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <utility>

#include "io/model_source.h"
#include "src/core/error.h"
#include "src/core/stopwatch.h"

namespace skim::pipeline {

double GenerateResult::prefill_tokens_per_second() const {
  return prefill_seconds > 0 ? static_cast<double>(prompt_ids.size()) / prefill_seconds : 0.0;
}

double GenerateResult::decode_tokens_per_second() const {
  // The first new token comes out of the prefill; each later one is one decode step.
  const auto steps = static_cast<double>(new_ids.empty() ? 0 : new_ids.size() - 1);
  return decode_seconds > 0 ? steps / decode_seconds : 0.0;
}

int32_t pick_token(const float* logits, int64_t vocab, double temperature, double u) {
  SKIM_ASSERT(vocab > 0);
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  if (temperature <= 0.0) return static_cast<int32_t>(best);
  std::vector<double> p(static_cast<size_t>(vocab));
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) {
    p[static_cast<size_t>(i)] =
        std::exp((static_cast<double>(logits[i]) - logits[best]) / temperature);
    sum += p[static_cast<size_t>(i)];
  }
  double target = u * sum;
  for (int64_t i = 0; i < vocab; ++i) {
    target -= p[static_cast<size_t>(i)];
    if (target < 0.0) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(best);  // u * sum rounded up to the total
}

Generator::Generator(const io::ModelSource& source, const LayerLoader& loader)
    : ends_(model::LlamaModel::load(source, model::LlamaModel::Layers::kStream)) {
  const int64_t n = source.config().num_layers;
  layers_.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    layers_.push_back(loader ? loader(i) : model::DecoderLayer::load(source, i));
}

std::vector<int32_t> Generator::generate(const std::vector<int32_t>& prompt,
                                         const GenerateOptions& options, int32_t eos_id,
                                         GenerateResult* timings) const {
  const ModelConfig& c = ends_.config();
  if (prompt.empty()) fail(ErrorKind::kUsage, "generate: the prompt has no tokens");
  if (options.max_new_tokens < 0)
    fail(ErrorKind::kUsage, "generate: --tokens must be >= 0 (got {})", options.max_new_tokens);
  const auto total = static_cast<int64_t>(prompt.size()) + options.max_new_tokens;
  if (c.max_position_embeddings > 0 && total > c.max_position_embeddings)
    fail(ErrorKind::kUsage,
         "generate: {} prompt tokens + {} new tokens exceed the model's context of {}",
         prompt.size(), options.max_new_tokens, c.max_position_embeddings);
  std::vector<int32_t> out;
  if (options.max_new_tokens == 0) return out;

  const std::unique_ptr<DecodeBackend> backend =
      options.device == Device::kCuda
          ? make_cuda_decode_backend(ends_, layers_, total, options.cuda_device)
          : make_cpu_decode_backend(ends_, layers_, total);
  std::mt19937_64 rng(options.seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));

  // Runs `count` tokens through the model; returns the pick from the last one's logits.
  auto step = [&](const int32_t* ids, int64_t count) {
    backend->step(ids, count, logits.data());
    return pick_token(logits.data(), c.vocab_size, options.temperature, uniform(rng));
  };

  auto start = std::chrono::steady_clock::now();
  out.push_back(step(prompt.data(), static_cast<int64_t>(prompt.size())));
  if (timings) timings->prefill_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  while (static_cast<int64_t>(out.size()) < options.max_new_tokens &&
         !(options.stop_at_eos && out.back() == eos_id && eos_id >= 0))
    out.push_back(step(&out.back(), 1));
  if (timings) timings->decode_seconds = seconds_since(start);
  return out;
}

GenerateResult generate_text(const io::ModelSource& source, const std::string& prompt,
                             const GenerateOptions& options, const Generator::LayerLoader& loader) {
  GenerateResult r;
  const auto tokenizer = source.tokenizer();
  if (tokenizer->add_bos() && tokenizer->bos_id() >= 0) r.prompt_ids.push_back(tokenizer->bos_id());
  const std::vector<int32_t> ids = tokenizer->encode(prompt);
  r.prompt_ids.insert(r.prompt_ids.end(), ids.begin(), ids.end());
  const auto start = std::chrono::steady_clock::now();
  const Generator generator(source, loader);
  r.load_seconds = seconds_since(start);
  r.new_ids = generator.generate(r.prompt_ids, options, tokenizer->eos_id(), &r);
  r.stopped_at_eos = options.stop_at_eos && !r.new_ids.empty() && tokenizer->eos_id() >= 0 &&
                     r.new_ids.back() == tokenizer->eos_id();
  std::vector<int32_t> shown = r.new_ids;
  if (r.stopped_at_eos) shown.pop_back();  // the end marker is not part of the text
  r.text = tokenizer->decode(shown);
  return r;
}

}  // namespace skim::pipeline
