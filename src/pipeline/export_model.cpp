#include "src/pipeline/export_model.h"

#include <fmt/format.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "io/atomic_file.h"
#include "io/bpe_tokenizer.h"
#include "io/gguf_names.h"
#include "io/gguf_writer.h"
#include "io/hf_config.h"
#include "io/packed_format.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "src/core/error.h"
#include "src/model/llama_layer.h"
#include "src/pipeline/packed_model_dir.h"
#include "src/pipeline/packed_model_source.h"

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

// Every tensor of the model in Hugging Face names, in the order the converters write them:
// embedding; per layer input norm, q (bias), k (bias), v (bias), o, post-attention norm, gate,
// up, down; final norm; head when untied.
std::vector<std::pair<std::string, std::vector<int64_t>>> export_tensors(const ModelConfig& c) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string prefix = fmt::format("model.layers.{}.", i);
    out.push_back({prefix + "input_layernorm.weight", {c.hidden_size}});
    for (auto kind : model::kLinearKinds) {
      const auto shape = model::linear_shape(c, kind);
      const std::string key = prefix + model::linear_kind_name(kind);
      out.push_back({key + ".weight", {shape.out, shape.in}});
      if (c.attention_bias && model::linear_group(kind) == model::LinearGroup::kQkv)
        out.push_back({key + ".bias", {shape.out}});
      if (kind == model::LinearKind::kO)
        out.push_back({prefix + "post_attention_layernorm.weight", {c.hidden_size}});
    }
  }
  out.push_back({"model.norm.weight", {c.hidden_size}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size}});
  return out;
}

// Calls `emit(name, tensor)` for export_tensors(config) in order, the quantized linears
// dequantized, reading each packed file once.
void for_each_tensor(const std::string& folder, const ModelConfig& c,
                     const std::function<void(const std::string&, Tensor)>& emit) {
  const std::string dense_file = (fs::path(folder) / kPackedDenseFile).string();
  io::PackedModel ends = io::read_packed_model(dense_file);
  io::PackedModel layer;
  int64_t loaded = -1;
  std::string file = dense_file;
  for (const auto& [name, shape] : export_tensors(c)) {
    Tensor t;
    if (name.starts_with("model.layers.")) {
      const int64_t i = std::stoll(name.substr(13));
      if (i != loaded) {
        file = (fs::path(folder) / packed_layer_file(i)).string();
        layer = io::read_packed_model(file);
        loaded = i;
      }
      t = take_tensor(layer, name, file);
    } else {
      t = take_tensor(ends, name, dense_file);
    }
    if (t.shape() != shape)
      fail(ErrorKind::kBadInput, "{}: tensor {} has shape {}, expected {}", file, name,
           shape_string(t.shape()), shape_string(shape));
    emit(name, std::move(t));
  }
}

void refuse_existing(const std::string& out, bool overwrite) {
  std::error_code ec;
  if (fs::exists(out, ec) && !overwrite)
    fail(ErrorKind::kUsage, "{}: output exists; remove it, choose another --out or --overwrite",
         out);
}

// The tokenizer.ggml.pre name whose regexes the tokenizer uses ("" when none has them).
std::string gguf_pre_name(const std::vector<std::string>& regexes) {
  for (const char* name : {"gpt2", "smollm", "llama-bpe", "qwen2"})
    if (io::pre_tokenizer_regexes(name, "export") == regexes) return name;
  return "";
}

io::StDtype st_dtype(ExportDtype d) {
  return d == ExportDtype::kF32   ? io::StDtype::kF32
         : d == ExportDtype::kF16 ? io::StDtype::kF16
                                  : io::StDtype::kBF16;
}

}  // namespace

void export_hf(const std::string& packed_folder, const std::string& out,
               const ExportOptions& options) {
  if (options.max_shard_bytes <= 0) fail(ErrorKind::kUsage, "export: the shard size must be > 0");
  const PackedModelSource source(packed_folder);
  refuse_existing(out, options.overwrite);
  const std::string work = out + ".partial";
  fs::remove_all(work);
  fs::create_directories(work);
  io::write_hf_config((fs::path(work) / "config.json").string(), source.config());
  source.write_tokenizer(work);
  ShardWriter shards(work, st_dtype(options.dtype), options.max_shard_bytes);
  for_each_tensor(packed_folder, source.config(),
                  [&](const std::string& name, Tensor t) { shards.add(name, std::move(t)); });
  shards.finish();
  if (options.overwrite) fs::remove_all(out);
  fs::rename(work, out);
}

void export_gguf(const std::string& packed_folder, const std::string& out,
                 const ExportOptions& options) {
  const PackedModelSource source(packed_folder);
  const ModelConfig& c = source.config();
  refuse_existing(out, options.overwrite);
  const std::string tokenizer_json = (fs::path(packed_folder) / "tokenizer.json").string();
  if (!fs::is_regular_file(tokenizer_json))
    fail(ErrorKind::kBadInput,
         "{}: GGUF export needs a byte-level BPE tokenizer.json (SentencePiece is not supported "
         "yet)",
         packed_folder);
  const io::BpeSpec spec = io::read_hf_tokenizer_spec(tokenizer_json);
  const std::string pre = gguf_pre_name(spec.pre_regexes);
  if (pre.empty())
    fail(ErrorKind::kBadInput,
         "{}: its pre-tokenizer matches no llama.cpp pre-tokenizer name (gpt2, smollm, "
         "llama-bpe, qwen2)",
         tokenizer_json);
  if (c.rope_scaling.type == RopeScaling::Type::kLlama3)
    fail(ErrorKind::kBadInput, "{}: llama3 rope scaling is not exported to GGUF yet",
         packed_folder);

  io::GgufWriter w(out);
  const std::string& arch = c.architecture;
  const std::string a = arch + ".";
  w.add_string("general.architecture", arch);
  w.add_string("general.name", fs::path(packed_folder).filename().string());
  // llama_ftype: 0 all F32, 1 mostly F16, 32 mostly BF16.
  w.add_u32("general.file_type", options.dtype == ExportDtype::kF32   ? 0
                                 : options.dtype == ExportDtype::kF16 ? 1
                                                                      : 32);
  w.add_u32(a + "context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.add_u32(a + "embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.add_u32(a + "block_count", static_cast<uint32_t>(c.num_layers));
  w.add_u32(a + "feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.add_u32(a + "attention.head_count", static_cast<uint32_t>(c.num_heads));
  w.add_u32(a + "attention.head_count_kv", static_cast<uint32_t>(c.num_kv_heads));
  w.add_u32(a + "attention.key_length", static_cast<uint32_t>(c.head_dim));
  w.add_u32(a + "attention.value_length", static_cast<uint32_t>(c.head_dim));
  w.add_u32(a + "rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  w.add_f32(a + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.add_f32(a + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.add_u32(a + "vocab_size", static_cast<uint32_t>(c.vocab_size));
  if (c.rope_scaling.type == RopeScaling::Type::kLinear) {
    w.add_string(a + "rope.scaling.type", "linear");
    w.add_f32(a + "rope.scaling.factor", static_cast<float>(c.rope_scaling.factor));
  }
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", pre);
  w.add_string_array("tokenizer.ggml.tokens", spec.tokens);
  std::vector<int32_t> types(spec.tokens.size(), 1);  // 1 normal, 3 control
  for (int32_t id : spec.special_ids) types[static_cast<size_t>(id)] = 3;
  w.add_i32_array("tokenizer.ggml.token_type", types);
  w.add_string_array("tokenizer.ggml.merges", spec.merges);
  if (spec.bos_id >= 0)
    w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(spec.bos_id));
  if (spec.eos_id >= 0)
    w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(spec.eos_id));
  w.add_bool("tokenizer.ggml.add_bos_token", spec.add_bos);

  const io::GgmlType matrix_type = options.dtype == ExportDtype::kF32   ? io::GgmlType::kF32
                                   : options.dtype == ExportDtype::kF16 ? io::GgmlType::kF16
                                                                        : io::GgmlType::kBF16;
  for (const auto& [name, shape] : export_tensors(c))
    w.declare_tensor(io::gguf_tensor_name(name), shape,
                     shape.size() == 1 ? io::GgmlType::kF32 : matrix_type);
  const bool permuted = arch != "qwen2";  // as the reader: qwen2 keeps Hugging Face order
  for_each_tensor(packed_folder, c, [&](const std::string& name, Tensor t) {
    io::QkRows rows = io::QkRows::kNone;
    io::hf_tensor_name(io::gguf_tensor_name(name), &rows);
    if (permuted && rows != io::QkRows::kNone)
      t = io::reorder_qk_rows(t, rows == io::QkRows::kQ ? c.num_heads : c.num_kv_heads,
                              /*to_gguf=*/true);
    w.write_tensor(io::gguf_tensor_name(name), t.values());
  });
  w.commit();
}

}  // namespace skim::pipeline
