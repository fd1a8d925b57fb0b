// A SentencePiece model (LLaMA-1/2 tokenizer.model) through the SentencePiece library.
#include <sentencepiece_processor.h>

#include <string>
#include <vector>

#include "io/tokenizer.h"
#include "src/core/error.h"

namespace skim::io {

namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    const auto status = processor_.Load(path);
    if (!status.ok()) {
      fail(ErrorKind::kBadInput, "{}: not a loadable SentencePiece model: {}", path,
           status.ToString());
    }
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto status = processor_.Encode(text, &ids);
    if (!status.ok()) {
      fail(ErrorKind::kBadInput, "{}: cannot encode text: {}", path_, status.ToString());
    }
    return {ids.begin(), ids.end()};
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::vector<int> as_int;
    as_int.reserve(ids.size());
    for (int32_t id : ids) {
      if (id < 0 || id >= processor_.GetPieceSize()) {
        fail(ErrorKind::kBadInput, "{}: token id {} outside the vocabulary of {}", path_, id,
             processor_.GetPieceSize());
      }
      as_int.push_back(id);
    }
    std::string text;
    const auto status = processor_.Decode(as_int, &text);
    if (!status.ok()) {
      fail(ErrorKind::kBadInput, "{}: cannot decode ids: {}", path_, status.ToString());
    }
    return text;
  }

  int64_t vocab_size() const override { return processor_.GetPieceSize(); }
  int32_t bos_id() const override { return processor_.bos_id(); }
  int32_t eos_id() const override { return processor_.eos_id(); }
  // LLaMA-1/2 put BOS in front of every document.
  bool add_bos() const override { return processor_.bos_id() >= 0; }

 private:
  std::string path_;
  sentencepiece::SentencePieceProcessor processor_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace skim::io
