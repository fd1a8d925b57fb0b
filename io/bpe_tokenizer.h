#pragma once
// Pieces of the byte-level BPE tokenizer (make_bpe_tokenizer in io/tokenizer.h) that the loaders
// and the tests use directly: the GPT-2 byte alphabet and the regex pre-tokenizer.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace skim::io {

// GPT-2's reversible byte -> printable code point mapping: every byte becomes one code point
// (space -> "Ġ", newline -> "Ċ"), returned as UTF-8.
std::string to_byte_level(std::string_view bytes);
// The inverse; a code point outside the alphabet is kept as its UTF-8 bytes.
std::string from_byte_level(std::string_view text);

// Regexes applied in sequence for a GGUF tokenizer.ggml.pre value ("smollm", "gpt2", "llama-bpe",
// ...), as llama.cpp and the models' tokenizer.json define them. Throws kBadInput naming `origin`
// for a value it does not know.
std::vector<std::string> pre_tokenizer_regexes(const std::string& pre, const std::string& origin);

// The GPT-2 pattern as the Hugging Face ByteLevel pre-tokenizer writes it.
extern const char* const kGpt2Pattern;

// Splits text into words: each regex in turn splits every piece of the previous step into its
// matches and the text between them (both kept, as Hugging Face's "Isolated" split does), so the
// pieces always concatenate back to the input. Matching is UTF-8 + Unicode properties (PCRE2 UTF
// and UCP); invalid UTF-8 bytes fall into the gaps between matches.
class PreTokenizer {
 public:
  // Throws kBadInput naming `origin` for a pattern that does not compile.
  PreTokenizer(const std::vector<std::string>& patterns, const std::string& origin);
  ~PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;

  // Views into `text`. Thread-safe.
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skim::io
