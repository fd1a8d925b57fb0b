// config.json parsing for the supported architectures, its error cases, and the writer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/hf_config.h"
#include "src/core/error.h"

namespace skim::io {
namespace {

// Abridged from meta-llama/Llama-3.1-8B config.json.
constexpr const char* kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009],
  "hidden_act": "silu",
  "hidden_size": 4096,
  "intermediate_size": 14336,
  "max_position_embeddings": 131072,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "vocab_size": 128256
})";

// mistralai/Mistral-7B-v0.1.
constexpr const char* kMistral = R"({
  "architectures": ["MistralForCausalLM"],
  "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
  "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32,
  "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
  "sliding_window": 4096, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "vocab_size": 32000
})";

// Qwen/Qwen2-0.5B.
constexpr const char* kQwen2 = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "intermediate_size": 4864,
  "max_position_embeddings": 131072, "max_window_layers": 24, "model_type": "qwen2",
  "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_sliding_window": false,
  "vocab_size": 151936
})";

// A LLaMA-2 style file with the old "type" key for linear scaling and no kv heads.
constexpr const char* kLinear = R"({
  "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
  "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100,
  "rope_scaling": {"type": "linear", "factor": 2.0}, "bos_token_id": null
})";

template <typename F>
Error catch_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a skim::Error";
  return Error(ErrorKind::kInternal, "");
}

TEST(HfConfig, Llama31WithLlama3RopeScaling) {
  const ModelConfig c = parse_hf_config(kLlama31, "llama/config.json");
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_id, 128001);  // the first of the list
}

TEST(HfConfig, Mistral) {
  const ModelConfig c = parse_hf_config(kMistral, "mistral/config.json");
  EXPECT_EQ(c.architecture, "mistral");
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_FALSE(c.attention_bias);
}

TEST(HfConfig, Qwen2HasBiasAndTiedEmbeddings) {
  const ModelConfig c = parse_hf_config(kQwen2, "qwen2/config.json");
  EXPECT_EQ(c.architecture, "qwen2");
  EXPECT_EQ(c.hidden_size, 896);
  EXPECT_EQ(c.num_heads, 14);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.rope_theta, 1e6);
}

TEST(HfConfig, DefaultsAndLinearScaling) {
  const ModelConfig c = parse_hf_config(kLinear, "lin/config.json");
  EXPECT_EQ(c.num_kv_heads, 4);  // defaults to the head count
  EXPECT_EQ(c.head_dim, 16);     // hidden / heads
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_EQ(c.rope_scaling.factor, 2.0);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_EQ(c.eos_token_id, -1);

  // An explicit head_dim wins over hidden / heads.
  nlohmann::json j = nlohmann::json::parse(kLinear);
  j["head_dim"] = 32;
  EXPECT_EQ(parse_hf_config(j.dump(), "x").head_dim, 32);
}

// Each broken variant must give kBadInput naming the file and the key.
void expect_bad(const nlohmann::json& j, const std::string& key) {
  const std::string origin = "/models/broken/config.json";
  const Error e = catch_error([&] { parse_hf_config(j.dump(), origin); });
  EXPECT_EQ(e.kind(), ErrorKind::kBadInput) << e.what();
  const std::string msg = e.what();
  EXPECT_NE(msg.find(origin), std::string::npos) << msg;
  EXPECT_NE(msg.find(key), std::string::npos) << "expected key " << key << " in: " << msg;
}

TEST(HfConfig, ErrorsNameFileAndKey) {
  const nlohmann::json base = nlohmann::json::parse(kLlama31);
  {
    const Error e = catch_error([] { parse_hf_config("{\"hidden_size\": 4", "/m/config.json"); });
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find("/m/config.json"), std::string::npos);
  }
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "vocab_size"}) {
    nlohmann::json j = base;
    j.erase(key);
    SCOPED_TRACE(key);
    expect_bad(j, key);
  }
  {
    nlohmann::json j = base;
    j["hidden_size"] = "4096";
    expect_bad(j, "hidden_size");
    j = base;
    j["rope_theta"] = "big";
    expect_bad(j, "rope_theta");
    j = base;
    j["tie_word_embeddings"] = 1;
    expect_bad(j, "tie_word_embeddings");
    j = base;
    j["num_key_value_heads"] = -8;
    expect_bad(j, "num_key_value_heads");
    j = base;
    j["eos_token_id"] = "</s>";
    expect_bad(j, "eos_token_id");
  }
  {
    nlohmann::json j = base;
    j["architectures"] = {"GPT2LMHeadModel"};
    expect_bad(j, "GPT2LMHeadModel");
    j.erase("architectures");
    j["model_type"] = "gpt2";
    expect_bad(j, "model_type");
  }
  {
    nlohmann::json j = base;
    j["num_attention_heads"] = 30;  // 4096 % 30 != 0
    j["num_key_value_heads"] = 10;
    expect_bad(j, "num_attention_heads");
    j = base;
    j["num_key_value_heads"] = 5;  // 32 % 5 != 0
    expect_bad(j, "num_key_value_heads");
  }
  {
    nlohmann::json j = base;
    j["rope_scaling"]["rope_type"] = "yarn";
    expect_bad(j, "rope_scaling");
    j = base;
    j["rope_scaling"].erase("low_freq_factor");
    expect_bad(j, "rope_scaling.low_freq_factor");
    j = base;
    j["rope_scaling"] = 8;
    expect_bad(j, "rope_scaling");
  }
}

TEST(HfConfig, WriterRoundTrips) {
  for (const char* text : {kLlama31, kMistral, kQwen2, kLinear}) {
    const ModelConfig c = parse_hf_config(text, "in");
    const std::string out = hf_config_json(c);
    // The written file must be what transformers expects (checked independently of the parser).
    const nlohmann::json j = nlohmann::json::parse(out);
    EXPECT_EQ(j["hidden_size"], c.hidden_size);
    EXPECT_EQ(j["num_hidden_layers"], c.num_layers);
    EXPECT_EQ(j["model_type"], c.architecture);
    const ModelConfig back = parse_hf_config(out, "out");
    EXPECT_EQ(back.architecture, c.architecture);
    EXPECT_EQ(back.vocab_size, c.vocab_size);
    EXPECT_EQ(back.hidden_size, c.hidden_size);
    EXPECT_EQ(back.intermediate_size, c.intermediate_size);
    EXPECT_EQ(back.num_layers, c.num_layers);
    EXPECT_EQ(back.num_heads, c.num_heads);
    EXPECT_EQ(back.num_kv_heads, c.num_kv_heads);
    EXPECT_EQ(back.head_dim, c.head_dim);
    EXPECT_EQ(back.max_position_embeddings, c.max_position_embeddings);
    EXPECT_EQ(back.rope_theta, c.rope_theta);
    EXPECT_EQ(back.rope_scaling.type, c.rope_scaling.type);
    EXPECT_EQ(back.rope_scaling.factor, c.rope_scaling.factor);
    EXPECT_EQ(back.rope_scaling.low_freq_factor, c.rope_scaling.low_freq_factor);
    EXPECT_EQ(back.rope_scaling.high_freq_factor, c.rope_scaling.high_freq_factor);
    EXPECT_EQ(back.rope_scaling.original_max_position_embeddings,
              c.rope_scaling.original_max_position_embeddings);
    EXPECT_EQ(back.rms_norm_eps, c.rms_norm_eps);
    EXPECT_EQ(back.tie_word_embeddings, c.tie_word_embeddings);
    EXPECT_EQ(back.attention_bias, c.attention_bias);
    EXPECT_EQ(back.bos_token_id, c.bos_token_id);
    EXPECT_EQ(back.eos_token_id, c.eos_token_id);
  }
}

TEST(HfConfig, WriteAndLoadFile) {
  namespace fs = std::filesystem;
  std::string tmpl = (fs::temp_directory_path() / "skim_cfg_XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string path = (fs::path(tmpl) / "config.json").string();
  write_hf_config(path, parse_hf_config(kQwen2, "q"));
  const ModelConfig c = load_hf_config(path);
  EXPECT_EQ(c.architecture, "qwen2");
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(std::distance(fs::directory_iterator(tmpl), fs::directory_iterator()), 1);
  fs::remove_all(tmpl);
  EXPECT_EQ(catch_error([&] { load_hf_config(path); }).kind(), ErrorKind::kIo);
}

}  // namespace
}  // namespace skim::io
