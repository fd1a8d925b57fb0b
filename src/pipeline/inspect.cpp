#include "src/pipeline/inspect.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "io/gguf.h"
#include "io/gguf_dequant.h"
#include "io/model_source.h"
#include "io/packed_format.h"
#include "io/safetensors.h"
#include "src/core/error.h"
#include "src/model/llama_layer.h"
#include "src/pipeline/packed_model_dir.h"
#include "src/pipeline/packed_model_source.h"

namespace skim::pipeline {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

Json config_json(const ModelConfig& c) {
  return {{"architecture", c.architecture},
          {"num_layers", c.num_layers},
          {"hidden_size", c.hidden_size},
          {"intermediate_size", c.intermediate_size},
          {"num_heads", c.num_heads},
          {"num_kv_heads", c.num_kv_heads},
          {"head_dim", c.head_dim},
          {"vocab_size", c.vocab_size},
          {"max_position_embeddings", c.max_position_embeddings},
          {"rope_theta", c.rope_theta},
          {"tie_word_embeddings", c.tie_word_embeddings},
          {"attention_bias", c.attention_bias}};
}

// Adds one tensor to the per-type totals.
void count_tensor(Json& d, const std::string& type, int64_t parameters, uint64_t bytes) {
  Json& t = d["tensor_types"][type];
  if (t.is_null()) t = {{"tensors", 0}, {"parameters", 0}, {"bytes", 0}};
  t["tensors"] = t["tensors"].get<int64_t>() + 1;
  t["parameters"] = t["parameters"].get<int64_t>() + parameters;
  t["bytes"] = t["bytes"].get<uint64_t>() + bytes;
  d["tensors"] = d["tensors"].get<int64_t>() + 1;
  d["parameters"] = d["parameters"].get<int64_t>() + parameters;
}

uint64_t folder_bytes(const fs::path& dir) {
  uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) total += e.file_size();
  return total;
}

void describe_gguf(const std::string& path, Json& d) {
  const auto file = io::GgufFile::open(path);
  for (const auto& t : file->tensors())
    count_tensor(d, io::ggml_type_name(static_cast<uint32_t>(t.type)), shape_numel(t.shape()),
                 t.nbytes);
  d["file_bytes"] = fs::file_size(path);
}

void describe_hf(const std::string& folder, Json& d) {
  const auto reader = io::SafetensorsReader::open(io::hf_weights_path(folder));
  for (const auto& name : reader->names()) {
    const auto v = reader->raw(name);
    count_tensor(d, io::st_dtype_name(v.dtype), shape_numel(v.shape), v.bytes.size());
  }
  d["file_bytes"] = folder_bytes(folder);
}

Json histogram_json(const std::map<int, int64_t>& h) {
  Json j = Json::object();
  for (const auto& [b, n] : h) j[std::to_string(b)] = n;
  return j;
}

// report.json's relative error of each linear, by name (empty when there is no report).
std::map<std::string, std::pair<double, double>> reported_errors(const Json& report) {
  std::map<std::string, std::pair<double, double>> out;  // name -> (error, energy)
  if (!report.is_object() || !report.contains("layers")) return out;
  for (const auto& layer : report["layers"])
    for (const auto& l : layer.value("linears", Json::array()))
      out[l.value("name", "")] = {l.value("error", 0.0), l.value("energy", 0.0)};
  return out;
}

void describe_packed(const std::string& folder, Json& d) {
  const PackedModelSource source(folder);
  d["method"] = source.method();
  Json report;
  const fs::path report_path = fs::path(folder) / "report.json";
  if (fs::is_regular_file(report_path)) {
    std::ifstream in(report_path);
    report = Json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (report.is_discarded())
      fail(ErrorKind::kBadInput, "{}: not valid JSON", report_path.string());
    for (const char* key : {"options", "fingerprint", "calibration_tokens", "seconds", "ranks"})
      if (report.contains(key)) d[key] = report[key];
  }
  const auto errors = reported_errors(report);

  std::map<int, int64_t> model_hist;
  int64_t model_bits = 0, model_weights = 0;
  auto add_file = [&](const io::PackedModel& pm) {
    for (const auto& [name, t] : pm.dense)
      count_tensor(d, io::st_dtype_name(pm.dense_dtype), t.numel(),
                   static_cast<uint64_t>(t.numel()) * io::st_dtype_size(pm.dense_dtype));
  };
  add_file(io::read_packed_model((fs::path(folder) / kPackedDenseFile).string()));
  Json layers = Json::array();
  for (int64_t i = 0; i < source.config().num_layers; ++i) {
    const auto pm = io::read_packed_model((fs::path(folder) / packed_layer_file(i)).string());
    add_file(pm);
    Json linears = Json::array();
    std::map<int, int64_t> layer_hist;
    int64_t layer_bits = 0, layer_weights = 0;
    double layer_error = 0, layer_energy = 0;
    bool have_errors = true;
    for (int k = 0; k < model::kLinearKindCount; ++k) {
      const std::string name =
          fmt::format("model.layers.{}.{}", i, model::linear_kind_name(model::LinearKind(k)));
      std::map<int, int64_t> hist;
      int64_t rows = 0, cols = 0, bits = 0;
      std::string type;
      if (auto it = pm.lut_layers.find(name); it != pm.lut_layers.end()) {
        rows = it->second.rows, cols = it->second.cols, bits = quant::stored_bits(it->second);
        for (uint8_t b : it->second.bits) ++hist[b];
        type = "lut";
      } else if (auto u = pm.uniform_layers.find(name); u != pm.uniform_layers.end()) {
        rows = u->second.rows, cols = u->second.cols, bits = quant::stored_bits(u->second);
        hist[u->second.bits] = rows;
        type = "uniform";
      } else if (auto c = pm.column_lut_layers.find(name); c != pm.column_lut_layers.end()) {
        rows = c->second.rows, cols = c->second.cols, bits = quant::stored_bits(c->second);
        type = "column_lut";  // widths per column: no row histogram
      } else {
        fail(ErrorKind::kBadInput, "{}: layer {} holds no quantized {}", folder, i, name);
      }
      const uint64_t bytes = static_cast<uint64_t>((bits + 7) / 8);
      count_tensor(d, type, rows * cols, bytes);
      Json l = {{"name", name},
                {"rows", rows},
                {"cols", cols},
                {"bits_per_weight", static_cast<double>(bits) / static_cast<double>(rows * cols)},
                {"bits_histogram", histogram_json(hist)}};
      if (auto e = errors.find(name); e != errors.end() && e->second.second > 0) {
        l["relative_error"] = e->second.first / e->second.second;
        layer_error += e->second.first;
        layer_energy += e->second.second;
      } else {
        have_errors = false;
      }
      linears.push_back(std::move(l));
      for (const auto& [b, n] : hist) layer_hist[b] += n;
      layer_bits += bits;
      layer_weights += rows * cols;
    }
    Json layer = {
        {"layer", i},
        {"bits_per_weight", static_cast<double>(layer_bits) / static_cast<double>(layer_weights)},
        {"bits_histogram", histogram_json(layer_hist)},
        {"linears", std::move(linears)}};
    if (have_errors && layer_energy > 0) layer["relative_error"] = layer_error / layer_energy;
    layers.push_back(std::move(layer));
    for (const auto& [b, n] : layer_hist) model_hist[b] += n;
    model_bits += layer_bits;
    model_weights += layer_weights;
  }
  d["bits_per_weight"] = model_weights > 0
                             ? static_cast<double>(model_bits) / static_cast<double>(model_weights)
                             : 0.0;
  d["bits_histogram"] = histogram_json(model_hist);
  d["layers"] = std::move(layers);
  d["file_bytes"] = folder_bytes(folder);
}

// "q_proj" of "self_attn.q_proj".
std::string short_name(int k) {
  const std::string name = model::linear_kind_name(model::LinearKind(k));
  return name.substr(name.find('.') + 1);
}

std::string mib(uint64_t bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

std::string millions(int64_t n) {
  return fmt::format("{:.2f} M", static_cast<double>(n) / 1e6);
}

// "1: 25.0%  2: 50.0%  3: 25.0%" over the rows of a histogram.
std::string histogram_text(const Json& h) {
  int64_t total = 0;
  for (const auto& [b, n] : h.items()) total += n.get<int64_t>();
  std::string out;
  for (const auto& [b, n] : h.items())
    out += fmt::format(
        "{}{}: {:.1f}%", out.empty() ? "" : "  ", b,
        total > 0 ? 100.0 * static_cast<double>(n.get<int64_t>()) / static_cast<double>(total)
                  : 0.0);
  return out;
}

}  // namespace

Json inspect_model(const std::string& path) {
  Json d = {{"path", path}, {"tensors", 0}, {"parameters", 0}, {"tensor_types", Json::object()}};
  if (is_packed_model_dir(path)) {
    d["format"] = "skim-dist";
    d["config"] = config_json(PackedModelSource(path).config());
    describe_packed(path, d);
  } else {
    const auto source = io::open_model(path);
    d["config"] = config_json(source->config());
    if (fs::is_directory(path)) {
      d["format"] = "huggingface";
      describe_hf(path, d);
    } else {
      d["format"] = "gguf";
      describe_gguf(path, d);
    }
  }
  return d;
}

std::string render_inspect(const Json& d) {
  const Json& c = d["config"];
  std::string s = fmt::format("{}: {} model, {}\n", d["path"].get<std::string>(),
                              d["format"].get<std::string>(), c["architecture"].get<std::string>());
  s += fmt::format(
      "  {} layers, hidden {}, intermediate {}, heads {} (kv {}), head dim {}, vocab {}{}\n",
      c["num_layers"].get<int64_t>(), c["hidden_size"].get<int64_t>(),
      c["intermediate_size"].get<int64_t>(), c["num_heads"].get<int64_t>(),
      c["num_kv_heads"].get<int64_t>(), c["head_dim"].get<int64_t>(),
      c["vocab_size"].get<int64_t>(),
      c["tie_word_embeddings"].get<bool>() ? ", tied embeddings" : "");
  s += fmt::format("  {} parameters in {} tensors, {} on disk\n",
                   millions(d["parameters"].get<int64_t>()), d["tensors"].get<int64_t>(),
                   mib(d["file_bytes"].get<uint64_t>()));
  for (const auto& [type, t] : d["tensor_types"].items())
    s += fmt::format("    {:<8} {:>5} tensors {:>12} parameters {:>12}\n", type,
                     t["tensors"].get<int64_t>(), millions(t["parameters"].get<int64_t>()),
                     mib(t["bytes"].get<uint64_t>()));
  if (!d.contains("method")) return s;

  s += fmt::format("  method {}, {:.4f} bits per weight (all overhead counted)\n",
                   d["method"].get<std::string>(), d["bits_per_weight"].get<double>());
  s += fmt::format("  rows by bits: {}\n", histogram_text(d["bits_histogram"]));
  if (d.contains("options")) {
    std::string opts;
    for (const auto& [k, v] : d["options"].items())
      if (k != "model" && k != "calib")
        opts += fmt::format("{}{}={}", opts.empty() ? "" : " ", k, v.dump());
    s += fmt::format("  options: {}\n", opts);
    s += fmt::format("  calibration: {} ({} x {} tokens), fingerprint {}\n",
                     d["options"].value("calib", ""), d["options"].value("calib_samples", 0),
                     d["options"].value("calib_seq_len", 0), d.value("fingerprint", ""));
  }
  s += "  layer   bits  rel.err |";
  for (int k = 0; k < model::kLinearKindCount; ++k) s += fmt::format(" {:>9}", short_name(k));
  s += "   (bits per weight of each linear)\n";
  for (const auto& l : d["layers"]) {
    s += fmt::format(
        "  {:>5} {:>6.3f} {:>8} |", l["layer"].get<int64_t>(), l["bits_per_weight"].get<double>(),
        l.contains("relative_error") ? fmt::format("{:.4f}", l["relative_error"].get<double>())
                                     : std::string("-"));
    for (const auto& x : l["linears"])
      s += fmt::format(" {:>9.3f}", x["bits_per_weight"].get<double>());
    s += "\n";
  }
  return s;
}

}  // namespace skim::pipeline
