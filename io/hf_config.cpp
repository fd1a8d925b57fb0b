#include "io/hf_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "io/atomic_file.h"
#include "src/core/error.h"

namespace skim::io {

namespace {

using nlohmann::json;

struct ArchInfo {
  const char* hf_class;
  const char* model_type;
  int64_t default_max_positions;  // the transformers config class default
};

constexpr ArchInfo kArchs[] = {
    {"LlamaForCausalLM", "llama", 2048},
    {"MistralForCausalLM", "mistral", 4096 * 32},
    {"Qwen2ForCausalLM", "qwen2", 32768},
};

// Typed access to one key of a JSON object; every error names the file and the key.
class Reader {
 public:
  Reader(const json& obj, const std::string& origin, std::string prefix = "")
      : obj_(obj), origin_(origin), prefix_(std::move(prefix)) {}

  // Absent and null both count as "not given".
  const json* find(const char* key) const {
    const auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }
  std::string name(const char* key) const { return prefix_ + key; }

  [[noreturn]] void type_error(const char* key, const char* expected) const {
    fail(ErrorKind::kBadInput, "{}: key {} must be {}, got {}", origin_, name(key), expected,
         find(key)->dump());
  }
  [[noreturn]] void missing(const char* key) const {
    fail(ErrorKind::kBadInput, "{}: missing required key {}", origin_, name(key));
  }

  std::optional<int64_t> opt_int(const char* key) const {
    const json* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_integer()) type_error(key, "an integer");
    return v->get<int64_t>();
  }
  int64_t req_positive(const char* key) const {
    const std::optional<int64_t> v = opt_int(key);
    if (!v) missing(key);
    if (*v <= 0) type_error(key, "a positive integer");
    return *v;
  }
  std::optional<double> opt_number(const char* key) const {
    const json* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number()) type_error(key, "a number");
    return v->get<double>();
  }
  double req_number(const char* key) const {
    const std::optional<double> v = opt_number(key);
    if (!v) missing(key);
    return *v;
  }
  bool opt_bool(const char* key, bool fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) type_error(key, "true or false");
    return v->get<bool>();
  }
  // A token id, or a list of them (the first is taken); -1 when absent.
  int64_t token_id(const char* key) const {
    const json* v = find(key);
    if (v == nullptr) return -1;
    if (v->is_number_integer()) return v->get<int64_t>();
    if (v->is_array() && !v->empty() && (*v)[0].is_number_integer()) return (*v)[0].get<int64_t>();
    type_error(key, "an integer or a list of integers");
  }

 private:
  const json& obj_;
  const std::string& origin_;
  std::string prefix_;
};

RopeScaling parse_rope_scaling(const json& cfg, const std::string& origin) {
  RopeScaling rs;
  const auto it = cfg.find("rope_scaling");
  if (it == cfg.end() || it->is_null()) return rs;
  if (!it->is_object())
    fail(ErrorKind::kBadInput, "{}: key rope_scaling must be null or an object, got {}", origin,
         it->dump());
  const Reader r(*it, origin, "rope_scaling.");
  // Newer files say "rope_type", older ones "type".
  const json* type = r.find("rope_type");
  const char* type_key = "rope_type";
  if (type == nullptr) {
    type = r.find("type");
    type_key = "type";
  }
  if (type == nullptr) r.missing("rope_type");
  if (!type->is_string()) r.type_error(type_key, "a string");
  const std::string t = type->get<std::string>();
  if (t == "default") return rs;
  if (t == "linear") {
    rs.type = RopeScaling::Type::kLinear;
    rs.factor = r.req_number("factor");
  } else if (t == "llama3") {
    rs.type = RopeScaling::Type::kLlama3;
    rs.factor = r.req_number("factor");
    rs.low_freq_factor = r.req_number("low_freq_factor");
    rs.high_freq_factor = r.req_number("high_freq_factor");
    rs.original_max_position_embeddings = r.req_positive("original_max_position_embeddings");
  } else {
    fail(ErrorKind::kBadInput,
         "{}: key rope_scaling.{}: unsupported rope scaling \"{}\" (supported: linear, llama3)",
         origin, type_key, t);
  }
  if (rs.factor <= 0)
    fail(ErrorKind::kBadInput, "{}: key rope_scaling.factor must be positive, got {}", origin,
         rs.factor);
  return rs;
}

const ArchInfo& find_arch(const json& cfg, const std::string& origin) {
  const auto archs = cfg.find("architectures");
  if (archs != cfg.end() && !archs->is_null()) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string())
      fail(ErrorKind::kBadInput, "{}: key architectures must be a list of strings, got {}", origin,
           archs->dump());
    const std::string name = (*archs)[0].get<std::string>();
    for (const ArchInfo& a : kArchs)
      if (name == a.hf_class) return a;
    fail(ErrorKind::kBadInput,
         "{}: key architectures: unsupported architecture {} (supported: LlamaForCausalLM, "
         "MistralForCausalLM, Qwen2ForCausalLM)",
         origin, name);
  }
  const auto type = cfg.find("model_type");
  if (type == cfg.end() || !type->is_string())
    fail(ErrorKind::kBadInput, "{}: missing required key architectures (or model_type)", origin);
  const std::string name = type->get<std::string>();
  for (const ArchInfo& a : kArchs)
    if (name == a.model_type) return a;
  fail(ErrorKind::kBadInput,
       "{}: key model_type: unsupported model type {} (supported: llama, mistral, qwen2)", origin,
       name);
}

}  // namespace

ModelConfig parse_hf_config(std::string_view json_text, const std::string& origin) {
  json cfg;
  try {
    cfg = json::parse(json_text);
  } catch (const json::exception& e) {
    fail(ErrorKind::kBadInput, "{}: not valid JSON: {}", origin, e.what());
  }
  if (!cfg.is_object()) fail(ErrorKind::kBadInput, "{}: not a JSON object", origin);
  const ArchInfo& arch = find_arch(cfg, origin);
  const Reader r(cfg, origin);

  ModelConfig c;
  c.architecture = arch.model_type;
  c.hidden_size = r.req_positive("hidden_size");
  c.intermediate_size = r.req_positive("intermediate_size");
  c.num_layers = r.req_positive("num_hidden_layers");
  c.num_heads = r.req_positive("num_attention_heads");
  c.vocab_size = r.req_positive("vocab_size");
  c.num_kv_heads =
      r.find("num_key_value_heads") ? r.req_positive("num_key_value_heads") : c.num_heads;
  if (r.find("head_dim")) {
    // An explicit head_dim need not equal hidden_size / heads (the projections then change width).
    c.head_dim = r.req_positive("head_dim");
  } else {
    if (c.hidden_size % c.num_heads != 0)
      fail(ErrorKind::kBadInput,
           "{}: key num_attention_heads: {} heads do not divide hidden_size {}", origin,
           c.num_heads, c.hidden_size);
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.num_heads % c.num_kv_heads != 0)
    fail(ErrorKind::kBadInput,
         "{}: key num_key_value_heads: {} kv heads do not divide num_attention_heads {}", origin,
         c.num_kv_heads, c.num_heads);
  c.max_position_embeddings = r.find("max_position_embeddings")
                                  ? r.req_positive("max_position_embeddings")
                                  : arch.default_max_positions;
  c.rope_theta = r.opt_number("rope_theta").value_or(10000.0);
  if (c.rope_theta <= 0)
    fail(ErrorKind::kBadInput, "{}: key rope_theta must be positive, got {}", origin, c.rope_theta);
  c.rope_scaling = parse_rope_scaling(cfg, origin);
  c.rms_norm_eps = r.opt_number("rms_norm_eps").value_or(1e-6);  // transformers' default
  if (c.rms_norm_eps <= 0)
    fail(ErrorKind::kBadInput, "{}: key rms_norm_eps must be positive, got {}", origin,
         c.rms_norm_eps);
  c.tie_word_embeddings = r.opt_bool("tie_word_embeddings", false);
  // Qwen2 always has q/k/v biases; LLaMA files may opt in with attention_bias.
  c.attention_bias = c.architecture == "qwen2" ? true : r.opt_bool("attention_bias", false);
  c.bos_token_id = r.token_id("bos_token_id");
  c.eos_token_id = r.token_id("eos_token_id");
  return c;
}

ModelConfig load_hf_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(ErrorKind::kIo, "{}: read failed", path);
  return parse_hf_config(ss.str(), path);
}

std::string hf_config_json(const ModelConfig& c) {
  const ArchInfo* arch = nullptr;
  for (const ArchInfo& a : kArchs)
    if (c.architecture == a.model_type) arch = &a;
  if (arch == nullptr)
    fail(ErrorKind::kInternal, "config.json: unsupported architecture \"{}\"", c.architecture);
  nlohmann::ordered_json j;
  j["architectures"] = {arch->hf_class};
  j["model_type"] = arch->model_type;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  switch (c.rope_scaling.type) {
    case RopeScaling::Type::kNone:
      j["rope_scaling"] = nullptr;
      break;
    case RopeScaling::Type::kLinear:
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}};
      break;
    case RopeScaling::Type::kLlama3:
      j["rope_scaling"] = {
          {"rope_type", "llama3"},
          {"factor", c.rope_scaling.factor},
          {"low_freq_factor", c.rope_scaling.low_freq_factor},
          {"high_freq_factor", c.rope_scaling.high_freq_factor},
          {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
      break;
  }
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_bias"] = c.attention_bias;
  j["bos_token_id"] = c.bos_token_id >= 0 ? nlohmann::ordered_json(c.bos_token_id) : nullptr;
  j["eos_token_id"] = c.eos_token_id >= 0 ? nlohmann::ordered_json(c.eos_token_id) : nullptr;
  return j.dump(2) + "\n";
}

void write_hf_config(const std::string& path, const ModelConfig& config) {
  write_file_atomic(path, hf_config_json(config));
}

}  // namespace skim::io
