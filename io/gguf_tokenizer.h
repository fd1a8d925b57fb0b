#pragma once
// The byte-level BPE tokenizer stored in a GGUF file's tokenizer.ggml.* metadata.
#include "io/gguf.h"
#include "io/tokenizer.h"

namespace skim::io {

// Reads tokenizer.ggml.{model, tokens, merges, token_type, pre, bos_token_id, eos_token_id,
// add_bos_token}. Control (3) and user-defined (4) tokens become special_ids. Throws kBadInput
// naming the file when the tokenizer is not BPE ("gpt2") or a required key is missing.
BpeSpec bpe_spec_from_gguf(const GgufFile& file);

}  // namespace skim::io
