#pragma once
// Text <-> token ids. Implementations: byte-level BPE (GPT-2 style; from GGUF metadata or a
// Hugging Face tokenizer.json) and SentencePiece (a LLaMA tokenizer.model).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace skim::io {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of `text`, without BOS/EOS.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when the model has none
  virtual int32_t eos_id() const = 0;
  // Whether the model expects BOS in front of a document (GGUF tokenizer.ggml.add_bos_token).
  virtual bool add_bos() const = 0;
};

// What a byte-level BPE tokenizer is made of, whichever file it came from.
struct BpeSpec {
  std::vector<std::string> tokens;   // id -> token text in the byte-level alphabet ("Ġthe")
  std::vector<std::string> merges;   // "Ġ t" in priority order
  std::vector<int32_t> special_ids;  // ids matched literally in the text (control tokens)
  std::string pre_tokenizer;         // GGUF tokenizer.ggml.pre ("smollm", "llama-bpe", "gpt2"...)
  // Pre-tokenizer regexes applied in sequence; when non-empty they replace `pre_tokenizer`
  // (a tokenizer.json states its patterns instead of a name).
  std::vector<std::string> pre_regexes;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  bool add_bos = false;
};

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec, const std::string& origin);
// A Hugging Face tokenizer.json (model.type BPE with a ByteLevel pre-tokenizer).
std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& path);
// What it is made of (with tokenizer_config.json beside it, when there is one).
BpeSpec read_hf_tokenizer_spec(const std::string& path);
// A SentencePiece model file (LLaMA-1/2 tokenizer.model).
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path);

}  // namespace skim::io
