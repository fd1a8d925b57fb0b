#include "tests/pipeline/packed_test_model.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "io/atomic_file.h"
#include "io/bpe_tokenizer.h"
#include "io/hf_config.h"
#include "io/packed_format.h"
#include "io/tokenizer_export.h"
#include "src/core/half.h"
#include "src/model/llama_layer.h"
#include "src/pipeline/packed_model_dir.h"
#include "src/quant/packed_layer.h"
#include "src/quant/rtn.h"
#include "src/quant/skim_layer.h"

namespace skim::testing {

namespace fs = std::filesystem;

TempFolder::TempFolder(const std::string& tag) {
  static std::atomic<int> counter{0};
  path_ = (fs::temp_directory_path() /
           fmt::format("skim_{}_{}_{}", tag, ::getpid(), counter.fetch_add(1)))
              .string();
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempFolder::~TempFolder() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

SyntheticSpec packed_test_spec(uint32_t seed) {
  SyntheticSpec s;
  s.layers = 2;
  s.hidden = 64;
  s.heads = 4;
  s.kv_heads = 2;
  s.ffn = 96;
  s.vocab = 256;
  s.seed = seed;
  return s;
}

std::map<std::string, Tensor> write_packed_test_model(const SyntheticSource& source,
                                                      const std::string& folder) {
  const ModelConfig& c = source.config();
  fs::create_directories(fs::path(folder) / pipeline::kPackedLayersFolder);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> alpha_dist(0.5f, 2.0f);
  std::map<std::string, Tensor> dequantized;
  int64_t total_bits = 0, total_weights = 0;
  nlohmann::json layer_files = nlohmann::json::array();

  for (int64_t i = 0; i < c.num_layers; ++i) {
    io::PackedModel packed;
    packed.method = "kmeans";
    packed.dense_dtype = io::StDtype::kF32;
    const std::string prefix = fmt::format("model.layers.{}.", i);
    for (int k = 0; k < model::kLinearKindCount; ++k) {
      const auto kind = static_cast<model::LinearKind>(k);
      const std::string key = prefix + model::linear_kind_name(kind);
      const Tensor& w = source.tensor(key + ".weight");
      const bool attention_in = kind == model::LinearKind::kQ || kind == model::LinearKind::kK ||
                                kind == model::LinearKind::kV || kind == model::LinearKind::kGate;
      if (attention_in == (i % 2 == 0)) {
        const quant::UniformLayer u = quant::rtn_quantize(w, {.bits = 4, .group_size = 16});
        dequantized[key + ".weight"] = quant::dequantize(u);
        packed.uniform_layers.emplace(key, quant::pack(u));
        total_bits += quant::stored_bits(packed.uniform_layers.at(key));
      } else {
        Tensor h({w.dim(1), w.dim(1)});
        for (int64_t j = 0; j < w.dim(1); ++j) h.data()[j * w.dim(1) + j] = 1.0f;
        quant::LutLayer lut = quant::quantize_kmeans_layer(w, h, 3);
        lut.alpha.resize(static_cast<size_t>(w.dim(1)));
        for (uint16_t& a : lut.alpha) a = float_to_half(alpha_dist(rng));
        dequantized[key + ".weight"] = quant::dequantize(lut);
        packed.lut_layers.emplace(key, quant::pack(lut));
        total_bits += quant::stored_bits(packed.lut_layers.at(key));
      }
      total_weights += w.numel();
    }
    for (const char* norm : {"input_layernorm.weight", "post_attention_layernorm.weight"})
      packed.dense[prefix + norm] = source.tensor(prefix + norm);
    const std::string file = pipeline::packed_layer_file(i);
    io::write_packed_model((fs::path(folder) / file).string(), packed);
    layer_files.push_back(file);
  }

  io::PackedModel dense;
  dense.method = "kmeans";
  dense.dense_dtype = io::StDtype::kF32;
  for (const char* name : {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"})
    if (source.has_tensor(name)) dense.dense[name] = source.tensor(name);
  io::write_packed_model((fs::path(folder) / pipeline::kPackedDenseFile).string(), dense);

  io::write_hf_config((fs::path(folder) / "config.json").string(), c);
  io::BpeSpec spec;
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(io::to_byte_level(std::string(1, char(b))));
  spec.pre_tokenizer = "gpt2";
  io::write_bpe_tokenizer(spec, folder);

  const nlohmann::json index = {
      {"format", "skim-dist"},
      {"format_version", 1},
      {"method", "kmeans"},
      {"num_layers", c.num_layers},
      {"bits_per_weight", static_cast<double>(total_bits) / static_cast<double>(total_weights)},
      {"dense_file", pipeline::kPackedDenseFile},
      {"layer_files", layer_files},
      {"tokenizer", "tokenizer.json"}};
  io::write_file_atomic((fs::path(folder) / pipeline::kPackedIndexFile).string(), index.dump(2));
  return dequantized;
}

}  // namespace skim::testing
