// tokenizer.json of a Hugging Face folder (or of a packed folder): the tokenizer is built, then
// encodes a text with punctuation, digits and non-ASCII letters, and decodes the ids back.
#include "io/tokenizer.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace skim;
  const std::string path = fuzz::write_input(data, size, "tokenizer.json");
  fuzz::accepts([&] {
    const auto tokenizer = io::load_hf_tokenizer_json(path);
    const auto ids = tokenizer->encode("Hello, world! It's 2026: naïve café, 12345.\n\t<|end|>");
    for (int32_t id : ids)
      if (id < 0 || id >= tokenizer->vocab_size())
        fuzz::finding("encode gave an id outside the vocabulary", std::to_string(id));
    (void)tokenizer->decode(ids);
  });
  return 0;
}
