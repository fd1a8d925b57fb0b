#include "io/gguf_tokenizer.h"

#include <string>
#include <vector>

#include "src/core/error.h"

namespace skim::io {

namespace {

constexpr int64_t kTokenTypeControl = 3;
constexpr int64_t kTokenTypeUserDefined = 4;

int32_t optional_id(const GgufFile& file, const std::string& key) {
  return static_cast<int32_t>(file.get_int(key, -1));
}

}  // namespace

BpeSpec bpe_spec_from_gguf(const GgufFile& file) {
  const std::string model =
      file.has_key("tokenizer.ggml.model") ? file.get_string("tokenizer.ggml.model") : "";
  if (model != "gpt2") {
    fail(ErrorKind::kBadInput,
         "{}: tokenizer.ggml.model is '{}', only byte-level BPE ('gpt2') is supported", file.path(),
         model);
  }
  BpeSpec spec;
  spec.tokens = file.get_string_array("tokenizer.ggml.tokens");
  spec.merges = file.get_string_array("tokenizer.ggml.merges");
  if (file.has_key("tokenizer.ggml.token_type")) {
    const std::vector<int64_t> types = file.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != spec.tokens.size()) {
      fail(ErrorKind::kBadInput, "{}: tokenizer.ggml.token_type has {} entries for {} tokens",
           file.path(), types.size(), spec.tokens.size());
    }
    for (size_t id = 0; id < types.size(); ++id) {
      if (types[id] == kTokenTypeControl || types[id] == kTokenTypeUserDefined) {
        spec.special_ids.push_back(static_cast<int32_t>(id));
      }
    }
  }
  spec.pre_tokenizer =
      file.has_key("tokenizer.ggml.pre") ? file.get_string("tokenizer.ggml.pre") : "default";
  spec.bos_id = optional_id(file, "tokenizer.ggml.bos_token_id");
  spec.eos_id = optional_id(file, "tokenizer.ggml.eos_token_id");
  spec.add_bos = file.get_bool("tokenizer.ggml.add_bos_token", false);
  return spec;
}

}  // namespace skim::io
