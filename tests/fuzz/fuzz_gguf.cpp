// GGUF files as `skim-dist quantize --model x.gguf` reads them: the raw reader (every key, every
// tensor dequantized), then the model source on top of it (config from the metadata, the
// tokenizer built and run, the model's tensors loaded at the shapes the config gives).
#include "io/gguf.h"
#include "io/model_source.h"
#include "src/model/llama_layer.h"
#include "src/model/llama_model.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace skim;
  const std::string path = fuzz::write_input(data, size, "model.gguf");
  const bool parsed = fuzz::accepts([&] {
    const auto file = io::GgufFile::open(path);
    for (const auto& key : file->keys())
      if (file->find_value(key) == nullptr) fuzz::finding("a listed key is missing", key);
    for (const auto& t : file->tensors()) (void)file->dequantize(t);
  });
  if (!parsed) return 0;
  fuzz::accepts([&] {
    const auto source = io::open_gguf_model(path);
    const auto tokenizer = source->tokenizer();
    (void)tokenizer->decode(tokenizer->encode("Hello, world! It's 2026: naïve café, 12345.\n"));
    (void)model::LlamaModel::load(*source, model::LlamaModel::Layers::kStream);
    for (int64_t l = 0; l < source->config().num_layers; ++l)
      (void)model::DecoderLayer::load(*source, l);
  });
  return 0;
}
