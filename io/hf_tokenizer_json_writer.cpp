// A byte-level BPE spec written as a Hugging Face tokenizer.json (the inverse of
// load_hf_tokenizer_json) and the tokenizer_config.json that carries BOS/EOS.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/atomic_file.h"
#include "io/bpe_tokenizer.h"
#include "io/tokenizer_export.h"
#include "src/core/error.h"

namespace skim::io {

namespace {

using nlohmann::json;

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", true},
          {"use_regex", use_regex}};
}

// One pre-tokenizer node per regex, in order. The GPT-2 pattern is what ByteLevel(use_regex)
// applies itself, so when it comes last it folds into the ByteLevel step that every byte-level
// tokenizer needs anyway.
json pre_tokenizer_node(const BpeSpec& spec) {
  std::vector<std::string> regexes = spec.pre_regexes.empty()
                                         ? pre_tokenizer_regexes(spec.pre_tokenizer, "BPE spec")
                                         : spec.pre_regexes;
  bool gpt2_last = !regexes.empty() && regexes.back() == kGpt2Pattern;
  if (gpt2_last) regexes.pop_back();
  json steps = json::array();
  for (const std::string& r : regexes) {
    if (r == R"(\p{N})") {
      steps.push_back({{"type", "Digits"}, {"individual_digits", true}});
    } else if (r == R"(\p{N}+)") {
      steps.push_back({{"type", "Digits"}, {"individual_digits", false}});
    } else {
      steps.push_back({{"type", "Split"},
                       {"pattern", {{"Regex", r}}},
                       {"behavior", "Isolated"},
                       {"invert", false}});
    }
  }
  steps.push_back(byte_level(gpt2_last));
  return {{"type", "Sequence"}, {"pretokenizers", steps}};
}

void check_id(const BpeSpec& spec, int32_t id, const char* what) {
  if (id < 0 || static_cast<size_t>(id) >= spec.tokens.size())
    fail(ErrorKind::kBadInput, "BPE spec: {} id {} is outside the vocabulary of {}", what, id,
         spec.tokens.size());
}

}  // namespace

std::string bpe_tokenizer_json(const BpeSpec& spec) {
  if (spec.tokens.empty()) fail(ErrorKind::kBadInput, "BPE spec: the vocabulary is empty");
  json vocab = json::object();
  // The first id of a duplicated text wins, as in make_bpe_tokenizer.
  for (size_t id = 0; id < spec.tokens.size(); ++id)
    if (!spec.tokens[id].empty() && !vocab.contains(spec.tokens[id])) vocab[spec.tokens[id]] = id;
  json merges = json::array();
  for (const std::string& m : spec.merges) {
    const size_t space = m.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == m.size())
      fail(ErrorKind::kBadInput, "BPE spec: merge '{}' is not two tokens separated by a space", m);
    merges.push_back({m.substr(0, space), m.substr(space + 1)});
  }
  json added = json::array();
  for (int32_t id : spec.special_ids) {
    check_id(spec, id, "special token");
    added.push_back({{"id", id},
                     {"content", spec.tokens[static_cast<size_t>(id)]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  const json root = {{"version", "1.0"},
                     {"truncation", nullptr},
                     {"padding", nullptr},
                     {"added_tokens", added},
                     {"normalizer", nullptr},
                     {"pre_tokenizer", pre_tokenizer_node(spec)},
                     {"post_processor", nullptr},
                     {"decoder", byte_level(true)},
                     {"model",
                      {{"type", "BPE"},
                       {"dropout", nullptr},
                       {"unk_token", nullptr},
                       {"continuing_subword_prefix", nullptr},
                       {"end_of_word_suffix", nullptr},
                       {"fuse_unk", false},
                       {"byte_fallback", false},
                       {"vocab", vocab},
                       {"merges", merges}}}};
  return root.dump();
}

std::string bpe_tokenizer_config_json(const BpeSpec& spec) {
  json config = {{"add_bos_token", spec.add_bos}, {"add_eos_token", false}};
  if (spec.bos_id >= 0) {
    check_id(spec, spec.bos_id, "BOS");
    config["bos_token"] = spec.tokens[static_cast<size_t>(spec.bos_id)];
  }
  if (spec.eos_id >= 0) {
    check_id(spec, spec.eos_id, "EOS");
    config["eos_token"] = spec.tokens[static_cast<size_t>(spec.eos_id)];
  }
  return config.dump(2) + "\n";
}

void write_bpe_tokenizer(const BpeSpec& spec, const std::string& folder) {
  const std::string json_text = bpe_tokenizer_json(spec);
  const std::string config_text = bpe_tokenizer_config_json(spec);
  write_file_atomic(folder + "/tokenizer_config.json", config_text);
  write_file_atomic(folder + "/tokenizer.json", json_text);
}

}  // namespace skim::io
