// A Hugging Face tokenizer.json with a byte-level BPE model, turned into a BpeSpec.
#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/bpe_tokenizer.h"
#include "io/tokenizer.h"
#include "src/core/error.h"

namespace skim::io {

namespace {

using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open tokenizer file", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  json parsed = json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) fail(ErrorKind::kBadInput, "{}: not valid JSON", path);
  return parsed;
}

std::string type_of(const json& node) {
  return node.is_object() && node.contains("type") && node["type"].is_string()
             ? node["type"].get<std::string>()
             : std::string("?");
}

std::string escape_regex(const std::string& literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// Appends the regexes of one pre-tokenizer node in the order Hugging Face applies them.
void collect_pre_regexes(const json& node, const std::string& path,
                         std::vector<std::string>& regexes) {
  const std::string type = type_of(node);
  if (type == "Sequence") {
    if (!node.contains("pretokenizers") || !node["pretokenizers"].is_array()) {
      fail(ErrorKind::kBadInput, "{}: Sequence pre-tokenizer without a pretokenizers list", path);
    }
    for (const json& child : node["pretokenizers"]) collect_pre_regexes(child, path, regexes);
  } else if (type == "ByteLevel") {
    if (node.value("add_prefix_space", false)) {
      fail(ErrorKind::kBadInput, "{}: ByteLevel pre-tokenizer with add_prefix_space is unsupported",
           path);
    }
    if (node.value("use_regex", true)) regexes.emplace_back(kGpt2Pattern);
  } else if (type == "Digits") {
    regexes.emplace_back(node.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
  } else if (type == "Split") {
    const json& pattern = node.value("pattern", json::object());
    if (node.value("behavior", std::string()) != "Isolated" || node.value("invert", false)) {
      fail(ErrorKind::kBadInput,
           "{}: only Split pre-tokenizers with behavior Isolated are supported", path);
    }
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
      regexes.push_back(pattern["Regex"].get<std::string>());
    } else if (pattern.contains("String") && pattern["String"].is_string()) {
      regexes.push_back(escape_regex(pattern["String"].get<std::string>()));
    } else {
      fail(ErrorKind::kBadInput, "{}: Split pre-tokenizer without a Regex or String pattern", path);
    }
  } else {
    fail(ErrorKind::kBadInput, "{}: unsupported pre-tokenizer type '{}'", path, type);
  }
}

// tokenizer_config.json beside tokenizer.json names BOS/EOS by text and says whether BOS is added.
void read_config(const std::string& path, BpeSpec& spec,
                 const std::unordered_map<std::string, int32_t>& ids) {
  const auto config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (!std::filesystem::exists(config_path)) return;
  const json config = read_json(config_path.string());
  if (!config.is_object()) return;
  auto id_of = [&](const char* key) -> int32_t {
    if (!config.contains(key)) return -1;
    const json& value = config[key];
    std::string text;
    if (value.is_string()) text = value.get<std::string>();
    if (value.is_object() && value.contains("content") && value["content"].is_string()) {
      text = value["content"].get<std::string>();
    }
    const auto it = ids.find(text);
    return it == ids.end() ? -1 : it->second;
  };
  spec.bos_id = id_of("bos_token");
  spec.eos_id = id_of("eos_token");
  if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean()) {
    spec.add_bos = config["add_bos_token"].get<bool>();
  }
}

}  // namespace

BpeSpec read_hf_tokenizer_spec(const std::string& path) {
  const json root = read_json(path);
  if (!root.is_object()) fail(ErrorKind::kBadInput, "{}: not a tokenizer.json object", path);
  if (!root.contains("model") || !root["model"].is_object()) {
    fail(ErrorKind::kBadInput, "{}: no 'model' object", path);
  }
  const json& model = root["model"];
  const std::string model_type = model.contains("type") ? type_of(model) : "BPE";
  if (model_type != "BPE") {
    fail(ErrorKind::kBadInput, "{}: model type '{}' is unsupported (only BPE)", path, model_type);
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    fail(ErrorKind::kBadInput, "{}: model.vocab is missing or not an object", path);
  }
  if (!model.contains("merges") || !model["merges"].is_array()) {
    fail(ErrorKind::kBadInput, "{}: model.merges is missing or not a list", path);
  }
  if (root.contains("normalizer") && !root["normalizer"].is_null()) {
    fail(ErrorKind::kBadInput, "{}: unsupported normalizer '{}'", path,
         type_of(root["normalizer"]));
  }

  std::unordered_map<std::string, int32_t> ids;
  int64_t max_id = -1;
  auto add = [&](const std::string& text, const json& id_node) {
    if (!id_node.is_number_integer() || id_node.get<int64_t>() < 0 ||
        id_node.get<int64_t>() > INT32_MAX - 1) {
      fail(ErrorKind::kBadInput, "{}: token '{}' has an invalid id", path, text);
    }
    const auto id = static_cast<int32_t>(id_node.get<int64_t>());
    ids[text] = id;
    max_id = std::max<int64_t>(max_id, id);
    return id;
  };
  for (const auto& [text, id] : model["vocab"].items()) add(text, id);

  std::vector<std::pair<std::string, int32_t>> added;
  if (root.contains("added_tokens")) {
    if (!root["added_tokens"].is_array()) {
      fail(ErrorKind::kBadInput, "{}: added_tokens is not a list", path);
    }
    for (const json& token : root["added_tokens"]) {
      if (!token.is_object() || !token.contains("content") || !token["content"].is_string() ||
          !token.contains("id")) {
        fail(ErrorKind::kBadInput, "{}: an added token lacks 'content' or 'id'", path);
      }
      const std::string content = token["content"].get<std::string>();
      added.emplace_back(content, add(content, token["id"]));
    }
  }

  BpeSpec spec;
  spec.tokens.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [text, id] : ids) spec.tokens[id] = text;
  // Every added token is matched literally in the text, special or not, as Hugging Face does.
  for (const auto& [text, id] : added) {
    spec.tokens[id] = text;
    spec.special_ids.push_back(id);
  }

  spec.merges.reserve(model["merges"].size());
  for (const json& merge : model["merges"]) {
    if (merge.is_string()) {
      spec.merges.push_back(merge.get<std::string>());
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      spec.merges.push_back(merge[0].get<std::string>() + " " + merge[1].get<std::string>());
    } else {
      fail(ErrorKind::kBadInput, "{}: merge {} is neither \"a b\" nor [\"a\", \"b\"]", path,
           spec.merges.size());
    }
  }

  if (!root.contains("pre_tokenizer") || root["pre_tokenizer"].is_null()) {
    fail(ErrorKind::kBadInput, "{}: no pre_tokenizer (a ByteLevel one is required)", path);
  }
  collect_pre_regexes(root["pre_tokenizer"], path, spec.pre_regexes);
  if (spec.pre_regexes.empty()) {
    fail(ErrorKind::kBadInput, "{}: the pre-tokenizer splits nothing (ByteLevel use_regex=false)",
         path);
  }
  spec.pre_tokenizer = "tokenizer.json";
  read_config(path, spec, ids);
  return spec;
}

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& path) {
  return make_bpe_tokenizer(read_hf_tokenizer_spec(path), path);
}

}  // namespace skim::io
