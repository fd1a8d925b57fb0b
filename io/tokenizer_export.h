#pragma once
// Writing a model's tokenizer into a folder, so that a quantized model folder is self-contained:
// a byte-level BPE spec becomes a Hugging Face tokenizer.json (+ tokenizer_config.json for BOS,
// EOS and add_bos), and tokenizer files already on disk are copied as they are.
#include <string>

#include "io/tokenizer.h"

namespace skim::io {

// A Hugging Face tokenizer.json for `spec`: model BPE (vocab, merges as pairs), every special id
// as an added token, the pre-tokenizer as a Sequence (Digits for "\p{N}", ByteLevel for the GPT-2
// pattern, Split/Isolated for any other regex), ByteLevel decoder. load_hf_tokenizer_json of it
// gives the same ids as make_bpe_tokenizer(spec). Throws kBadInput for an unknown pre-tokenizer.
std::string bpe_tokenizer_json(const BpeSpec& spec);

// tokenizer_config.json naming bos_token / eos_token by their text and add_bos_token.
std::string bpe_tokenizer_config_json(const BpeSpec& spec);

// Writes tokenizer.json and tokenizer_config.json into `folder` (atomically, each file).
void write_bpe_tokenizer(const BpeSpec& spec, const std::string& folder);

// Copies tokenizer.json, tokenizer.model and tokenizer_config.json from `from_folder` into
// `to_folder`, whichever are present (atomically, each file). Throws kBadInput naming
// `from_folder` when it has neither tokenizer.json nor tokenizer.model, kIo when a copy fails.
void copy_tokenizer_files(const std::string& from_folder, const std::string& to_folder);

}  // namespace skim::io
