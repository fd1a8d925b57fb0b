#include "src/pipeline/export_hf.h"

#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "io/atomic_file.h"
#include "io/hf_config.h"
#include "io/packed_format.h"
#include "src/core/error.h"
#include "src/model/llama_layer.h"
#include "src/pipeline/packed_model_dir.h"
#include "src/pipeline/packed_model_source.h"
#include "src/quant/packed_layer.h"

namespace skim::pipeline {
namespace fs = std::filesystem;

namespace {

// Fills shards of at most `max_bytes` stored bytes (a larger tensor gets a shard of its own),
// named model-NNNNN.safetensors until the count is known.
class ShardWriter {
 public:
  ShardWriter(std::string folder, io::StDtype dtype, int64_t max_bytes)
      : folder_(std::move(folder)), dtype_(dtype), max_bytes_(max_bytes) {}

  void add(const std::string& name, Tensor t) {
    const int64_t bytes = t.numel() * static_cast<int64_t>(io::st_dtype_size(dtype_));
    if (pending_bytes_ > 0 && pending_bytes_ + bytes > max_bytes_) flush();
    if (!writer_) writer_ = std::make_unique<io::SafetensorsWriter>();
    writer_->add(name, std::move(t), dtype_);
    names_.push_back(name);
    pending_bytes_ += bytes;
    total_bytes_ += bytes;
  }

  // Writes the last shard and names them: model.safetensors when there is one, else
  // model-0000K-of-0000N.safetensors with model.safetensors.index.json.
  void finish() {
    flush();
    const size_t n = shards_.size();
    if (n == 1) {
      fs::rename(temp_name(0), fs::path(folder_) / "model.safetensors");
      return;
    }
    nlohmann::json map = nlohmann::json::object();
    for (size_t i = 0; i < n; ++i) {
      const std::string final_name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, n);
      fs::rename(temp_name(i), fs::path(folder_) / final_name);
      for (const auto& name : shards_[i]) map[name] = final_name;
    }
    const nlohmann::json index = {{"metadata", {{"total_size", total_bytes_}}},
                                  {"weight_map", map}};
    io::write_file_atomic((fs::path(folder_) / "model.safetensors.index.json").string(),
                          index.dump(2) + "\n");
  }

 private:
  fs::path temp_name(size_t i) const {
    return fs::path(folder_) / fmt::format("model-{:05d}.safetensors", i + 1);
  }
  void flush() {
    if (!writer_) return;
    writer_->set_metadata("format", "pt");
    writer_->write(temp_name(shards_.size()).string());
    shards_.push_back(std::move(names_));
    names_.clear();
    writer_.reset();
    pending_bytes_ = 0;
  }

  std::string folder_;
  io::StDtype dtype_;
  int64_t max_bytes_;
  std::unique_ptr<io::SafetensorsWriter> writer_;
  std::vector<std::string> names_;
  std::vector<std::vector<std::string>> shards_;
  int64_t pending_bytes_ = 0;
  int64_t total_bytes_ = 0;
};

Tensor take(io::PackedModel& m, const std::string& name, const std::string& file) {
  auto it = m.dense.find(name);
  if (it == m.dense.end()) fail(ErrorKind::kBadInput, "{}: tensor {} is missing", file, name);
  Tensor t = std::move(it->second);
  m.dense.erase(it);
  return t;
}

}  // namespace

void export_hf(const std::string& packed_folder, const std::string& out,
               const ExportOptions& options) {
  if (options.dtype != io::StDtype::kF16 && options.dtype != io::StDtype::kBF16)
    fail(ErrorKind::kUsage, "export: weights are stored as f16 or bf16");
  if (options.max_shard_bytes <= 0) fail(ErrorKind::kUsage, "export: the shard size must be > 0");
  const PackedModelSource source(packed_folder);
  const ModelConfig& c = source.config();
  std::error_code ec;
  if (fs::exists(out, ec) && !options.overwrite)
    fail(ErrorKind::kUsage, "{}: output exists; remove it, choose another --out or --overwrite",
         out);
  const std::string work = out + ".partial";
  fs::remove_all(work);
  fs::create_directories(work);

  io::write_hf_config((fs::path(work) / "config.json").string(), c);
  source.write_tokenizer(work);

  ShardWriter shards(work, options.dtype, options.max_shard_bytes);
  const std::string dense_file = (fs::path(packed_folder) / kPackedDenseFile).string();
  io::PackedModel ends = io::read_packed_model(dense_file);
  shards.add("model.embed_tokens.weight", take(ends, "model.embed_tokens.weight", dense_file));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string file = (fs::path(packed_folder) / packed_layer_file(i)).string();
    io::PackedModel m = io::read_packed_model(file);
    const std::string prefix = fmt::format("model.layers.{}.", i);
    shards.add(prefix + "input_layernorm.weight", take(m, prefix + "input_layernorm.weight", file));
    for (int k = 0; k < model::kLinearKindCount; ++k) {
      const auto kind = static_cast<model::LinearKind>(k);
      const std::string key = prefix + model::linear_kind_name(kind);
      Tensor w;
      if (auto it = m.lut_layers.find(key); it != m.lut_layers.end())
        w = quant::dequantize(quant::unpack(it->second));
      else if (auto u = m.uniform_layers.find(key); u != m.uniform_layers.end())
        w = quant::dequantize(quant::unpack(u->second));
      else
        w = take(m, key + ".weight", file);  // a linear kept dense
      shards.add(key + ".weight", std::move(w));
      if (c.attention_bias && model::linear_group(kind) == model::LinearGroup::kQkv)
        shards.add(key + ".bias", take(m, key + ".bias", file));
      if (kind == model::LinearKind::kO)
        shards.add(prefix + "post_attention_layernorm.weight",
                   take(m, prefix + "post_attention_layernorm.weight", file));
    }
  }
  shards.add("model.norm.weight", take(ends, "model.norm.weight", dense_file));
  if (!c.tie_word_embeddings)
    shards.add("lm_head.weight", take(ends, "lm_head.weight", dense_file));
  shards.finish();

  if (options.overwrite) fs::remove_all(out);
  fs::rename(work, out);
}

}  // namespace skim::pipeline
