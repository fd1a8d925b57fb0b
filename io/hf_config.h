#pragma once
// Hugging Face config.json <-> ModelConfig for the LLaMA-family architectures that share one
// decoder: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM.
#include <string>
#include <string_view>

#include "src/core/model_config.h"

namespace skim::io {

// Parses config.json text; `origin` (the file path) names the file in errors. Throws kBadInput
// naming origin and the key for invalid JSON, a missing required key, a value of the wrong type,
// an unsupported architecture or rope scaling, heads not dividing hidden_size, or kv heads not
// dividing heads.
ModelConfig parse_hf_config(std::string_view json_text, const std::string& origin);
// Reads and parses a config.json file (kIo if it cannot be read).
ModelConfig load_hf_config(const std::string& path);

// config.json text describing `config` (parse_hf_config of it gives `config` back).
std::string hf_config_json(const ModelConfig& config);
// Writes config.json atomically.
void write_hf_config(const std::string& path, const ModelConfig& config);

}  // namespace skim::io
