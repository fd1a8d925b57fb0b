#include "src/pipeline/packed_model_source.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <utility>

#include "io/hf_config.h"
#include "io/packed_format.h"
#include "io/safetensors.h"
#include "io/tensor_checks.h"
#include "io/tokenizer_export.h"
#include "src/core/error.h"
#include "src/pipeline/packed_linear.h"
#include "src/pipeline/packed_model_dir.h"
#include "src/quant/packed_layer.h"

namespace skim::pipeline {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_index(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kBadInput, "{}: cannot open the quantized model index", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  json j = json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) fail(ErrorKind::kBadInput, "{}: not a JSON object", path);
  return j;
}

const json& field(const json& j, const char* key, json::value_t type, const std::string& path) {
  if (!j.contains(key)) fail(ErrorKind::kBadInput, "{}: key '{}' is missing", path, key);
  const json& v = j[key];
  const bool ok = type == json::value_t::number_float     ? v.is_number()
                  : type == json::value_t::number_integer ? v.is_number_integer()
                                                          : v.type() == type;
  if (!ok) fail(ErrorKind::kBadInput, "{}: key '{}' has the wrong type", path, key);
  return v;
}

Tensor take_dense(io::PackedModel& m, const std::string& name, const std::vector<int64_t>& shape,
                  const std::string& file) {
  auto it = m.dense.find(name);
  if (it == m.dense.end()) fail(ErrorKind::kBadInput, "{}: tensor {} is missing", file, name);
  Tensor t = std::move(it->second);
  m.dense.erase(it);
  io::check_loaded_tensor(t, name, shape, file);
  return t;
}

// The file names of `key`: one string per layer.
std::vector<std::string> file_list(const json& index, const char* key, int64_t layers,
                                   const std::string& index_path) {
  std::vector<std::string> files;
  for (const json& f : field(index, key, json::value_t::array, index_path)) {
    if (!f.is_string()) fail(ErrorKind::kBadInput, "{}: {} holds a non-string", index_path, key);
    files.push_back(f.get<std::string>());
  }
  if (static_cast<int64_t>(files.size()) != layers)
    fail(ErrorKind::kBadInput, "{}: {} {} for num_layers {}", index_path, files.size(), key,
         layers);
  return files;
}

}  // namespace

PackedModelSource::PackedModelSource(const std::string& folder) : folder_(folder) {
  const std::string index_path = file_path(kPackedIndexFile);
  if (!fs::is_regular_file(index_path))
    fail(ErrorKind::kBadInput, "{}: no {} (not a quantized model folder)", folder,
         kPackedIndexFile);
  const json index = read_index(index_path);
  const std::string format = field(index, "format", json::value_t::string, index_path);
  if (format != kPackedIndexFormat)
    fail(ErrorKind::kBadInput, "{}: format is '{}', expected '{}'", index_path, format,
         kPackedIndexFormat);
  const int64_t version = field(index, "format_version", json::value_t::number_integer, index_path);
  if (version != kPackedIndexVersion)
    fail(ErrorKind::kBadInput, "{}: format_version {} is not supported (this build reads {})",
         index_path, version, kPackedIndexVersion);
  method_ = field(index, "method", json::value_t::string, index_path);
  if (method_ != "skim" && method_ != "kmeans" && method_ != "rtn" && method_ != "gptq" &&
      method_ != "slim" && method_ != "claq")
    fail(ErrorKind::kBadInput, "{}: unknown method '{}'", index_path, method_);
  bits_per_weight_ = field(index, "bits_per_weight", json::value_t::number_float, index_path);
  const int64_t layers = field(index, "num_layers", json::value_t::number_integer, index_path);
  dense_file_ = field(index, "dense_file", json::value_t::string, index_path);
  tokenizer_file_ = field(index, "tokenizer", json::value_t::string, index_path);
  if (tokenizer_file_ != "tokenizer.json" && tokenizer_file_ != "tokenizer.model")
    fail(ErrorKind::kBadInput, "{}: tokenizer '{}' is neither tokenizer.json nor tokenizer.model",
         index_path, tokenizer_file_);
  layer_files_ = file_list(index, "layer_files", layers, index_path);
  if (index.contains("residual_files"))  // written by quantize --save-residual
    residual_files_ = file_list(index, "residual_files", layers, index_path);

  std::vector<std::string> needed = {"config.json", dense_file_, tokenizer_file_};
  needed.insert(needed.end(), layer_files_.begin(), layer_files_.end());
  needed.insert(needed.end(), residual_files_.begin(), residual_files_.end());
  for (const std::string& f : needed)
    if (!fs::is_regular_file(file_path(f)))
      fail(ErrorKind::kBadInput, "{}: file {} named by {} is missing", folder, f, kPackedIndexFile);

  config_ = io::load_hf_config(file_path("config.json"));
  if (config_.num_layers != layers)
    fail(ErrorKind::kBadInput, "{}: num_layers {} but config.json has {} layers", index_path,
         layers, config_.num_layers);
}

std::string PackedModelSource::file_path(const std::string& relative) const {
  return (fs::path(folder_) / relative).string();
}

std::string PackedModelSource::file_of(const std::string& name, int64_t* layer) const {
  static const std::regex kLayer(R"(model\.layers\.(\d+)\..+)");
  std::smatch m;
  *layer = -1;
  if (std::regex_match(name, m, kLayer)) {
    const int64_t i = std::stoll(m[1].str());
    if (i >= static_cast<int64_t>(layer_files_.size())) return "";
    *layer = i;
    return file_path(layer_files_[static_cast<size_t>(i)]);
  }
  return file_path(dense_file_);
}

bool PackedModelSource::has_tensor(const std::string& name) const {
  int64_t layer = -1;
  const std::string file = file_of(name, &layer);
  if (file.empty()) return false;
  // The header alone answers: a dense tensor under its own name, a quantized linear P as
  // P.lut.labels or P.uq.codes (docs/FORMAT.md).
  const auto reader = io::SafetensorsReader::open(file);
  if (reader->has(name)) return true;
  if (!name.ends_with(".weight")) return false;
  const std::string key = name.substr(0, name.size() - 7);
  return reader->has(key + ".lut.labels") || reader->has(key + ".uq.codes");
}

Tensor PackedModelSource::load(const std::string& name,
                               const std::vector<int64_t>& expected_shape) const {
  int64_t layer = -1;
  const std::string file = file_of(name, &layer);
  if (file.empty()) fail(ErrorKind::kBadInput, "{}: no layer file for tensor {}", folder_, name);
  io::PackedModel m = io::read_packed_model(file);
  Tensor t = take_tensor(m, name, file);
  io::check_loaded_tensor(t, name, expected_shape, file);
  return t;
}

Tensor take_tensor(io::PackedModel& m, const std::string& name, const std::string& file) {
  if (auto it = m.dense.find(name); it != m.dense.end()) {
    Tensor t = std::move(it->second);
    m.dense.erase(it);
    return t;
  }
  const std::string key = name.ends_with(".weight") ? name.substr(0, name.size() - 7) : "";
  if (auto it = m.lut_layers.find(key); it != m.lut_layers.end())
    return quant::dequantize(quant::unpack(it->second));
  if (auto it = m.column_lut_layers.find(key); it != m.column_lut_layers.end())
    return quant::dequantize(it->second);
  if (auto it = m.uniform_layers.find(key); it != m.uniform_layers.end())
    return quant::dequantize(quant::unpack(it->second));
  fail(ErrorKind::kBadInput, "{}: tensor {} is missing", file, name);
}

std::unique_ptr<io::Tokenizer> PackedModelSource::tokenizer() const {
  if (tokenizer_file_ == "tokenizer.json")
    return io::load_hf_tokenizer_json(file_path(tokenizer_file_));
  return io::load_sentencepiece(file_path(tokenizer_file_));
}

void PackedModelSource::write_tokenizer(const std::string& folder) const {
  io::copy_tokenizer_files(folder_, folder);
}

model::DecoderLayer PackedModelSource::load_layer(int64_t i, int64_t qdec_channels) const {
  const ModelConfig& c = config_;
  if (i < 0 || i >= c.num_layers)
    fail(ErrorKind::kInternal, "layer {} out of range [0, {}) in {}", i, c.num_layers, folder_);
  if (qdec_channels > 0 && residual_files_.empty())
    fail(ErrorKind::kUsage, "--qdec: {} has no residuals (quantize with --save-residual)", folder_);
  const std::string file = file_path(layer_files_[static_cast<size_t>(i)]);
  io::PackedModel m = io::read_packed_model(file);
  io::PackedModel residuals;
  const std::string residual_file =
      qdec_channels > 0 ? file_path(residual_files_[static_cast<size_t>(i)]) : "";
  if (qdec_channels > 0) residuals = io::read_packed_model(residual_file);
  const std::string prefix = fmt::format("model.layers.{}.", i);
  std::vector<std::unique_ptr<model::Linear>> linears;
  for (int k = 0; k < model::kLinearKindCount; ++k) {
    const auto kind = static_cast<model::LinearKind>(k);
    const model::LinearShape shape = model::linear_shape(c, kind);
    const int64_t out = shape.out, in = shape.in;  // plain names: lambdas capture them
    const std::string key = prefix + model::linear_kind_name(kind);
    Tensor bias;
    if (c.attention_bias && model::linear_group(kind) == model::LinearGroup::kQkv)
      bias = take_dense(m, key + ".bias", {out}, file);
    auto check = [&](int64_t rows, int64_t cols) {
      if (rows != out || cols != in)
        fail(ErrorKind::kBadInput, "{}: layer {} is [{}, {}], expected [{}, {}]", file, key, rows,
             cols, out, in);
    };
    if (auto it = m.lut_layers.find(key); it != m.lut_layers.end()) {
      check(it->second.rows, it->second.cols);
      linears.push_back(std::make_unique<PackedLutLinear>(std::move(it->second), std::move(bias)));
    } else if (auto it2 = m.uniform_layers.find(key); it2 != m.uniform_layers.end()) {
      check(it2->second.rows, it2->second.cols);
      linears.push_back(
          std::make_unique<PackedUniformLinear>(std::move(it2->second), std::move(bias)));
    } else if (auto it3 = m.column_lut_layers.find(key); it3 != m.column_lut_layers.end()) {
      check(it3->second.rows, it3->second.cols);
      linears.push_back(
          std::make_unique<PackedColumnLutLinear>(std::move(it3->second), std::move(bias)));
    } else if (m.dense.count(key + ".weight") != 0) {
      Tensor w = take_dense(m, key + ".weight", {out, in}, file);
      linears.push_back(std::make_unique<model::DenseLinear>(std::move(w), std::move(bias)));
    } else {
      fail(ErrorKind::kBadInput, "{}: layer {} is missing", file, key);
    }
    if (qdec_channels > 0 && dynamic_cast<model::DenseLinear*>(linears.back().get()) == nullptr) {
      auto r = residuals.residual_layers.find(key);
      if (r == residuals.residual_layers.end())
        fail(ErrorKind::kBadInput, "{}: no residual of {}", residual_file, key);
      check(r->second.rows, r->second.cols);
      linears.back() = std::make_unique<QdecLinear>(std::move(linears.back()), std::move(r->second),
                                                    std::min(qdec_channels, in));
    }
  }
  Tensor in_norm = take_dense(m, prefix + "input_layernorm.weight", {c.hidden_size}, file);
  Tensor post_norm =
      take_dense(m, prefix + "post_attention_layernorm.weight", {c.hidden_size}, file);
  return model::DecoderLayer(c, i, std::move(linears), std::move(in_norm), std::move(post_norm));
}

std::unique_ptr<io::ModelSource> open_any_model(const std::string& path) {
  if (is_packed_model_dir(path)) return std::make_unique<PackedModelSource>(path);
  return io::open_model(path);
}

}  // namespace skim::pipeline
