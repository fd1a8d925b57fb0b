// ModelSource over a GGUF file: llama.cpp metadata keys -> ModelConfig, GGUF tensor names ->
// Hugging Face names, and the Q/K row order of llama.cpp's converter undone.
#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <optional>

#include "io/gguf.h"
#include "io/gguf_names.h"
#include "io/gguf_tokenizer.h"
#include "io/model_source.h"
#include "io/tensor_checks.h"
#include "io/tokenizer_export.h"
#include "src/core/error.h"

namespace skim::io {
namespace {

struct MappedName {
  std::string gguf;
  QkRows rows = QkRows::kNone;
};

// The per-frequency factors the converter writes as rope_freqs.weight for llama3 scaling, for
// the given parameters (mirrors the Hugging Face definition).
std::vector<double> llama3_rope_factors(double theta, int64_t dim, const RopeScaling& s) {
  const double low_wavelen =
      static_cast<double>(s.original_max_position_embeddings) / s.low_freq_factor;
  const double high_wavelen =
      static_cast<double>(s.original_max_position_embeddings) / s.high_freq_factor;
  std::vector<double> out;
  for (int64_t k = 0; k < dim; k += 2) {
    const double freq = 1.0 / std::pow(theta, static_cast<double>(k) / static_cast<double>(dim));
    const double wavelen = 2 * std::numbers::pi / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0);
    } else if (wavelen > low_wavelen) {
      out.push_back(s.factor);
    } else {
      const double smooth =
          (static_cast<double>(s.original_max_position_embeddings) / wavelen - s.low_freq_factor) /
          (s.high_freq_factor - s.low_freq_factor);
      out.push_back(1.0 / ((1 - smooth) / s.factor + smooth));
    }
  }
  return out;
}

class GgufModelSource final : public ModelSource {
 public:
  explicit GgufModelSource(const std::string& path) : file_(GgufFile::open(path)) {
    for (const auto& t : file_->tensors()) {
      QkRows rows;
      if (auto hf = hf_tensor_name(t.name, &rows)) names_[*hf] = {t.name, rows};
    }
    read_config();
  }

  const ModelConfig& config() const override { return config_; }
  bool has_tensor(const std::string& name) const override { return names_.count(name) != 0; }
  std::string path() const override { return file_->path(); }

  Tensor load(const std::string& name, const std::vector<int64_t>& expected_shape) const override {
    auto it = names_.find(name);
    if (it == names_.end()) fail(ErrorKind::kBadInput, "{}: missing tensor {}", path(), name);
    const MappedName& m = it->second;
    const std::string label = fmt::format("{} ({})", name, m.gguf);
    const GgufTensorInfo& info = *file_->find_tensor(m.gguf);
    if (info.shape() != expected_shape)
      fail(ErrorKind::kBadInput, "{}: tensor {} has shape {}, expected {}", path(), label,
           shape_string(info.shape()), shape_string(expected_shape));
    Tensor t = file_->dequantize(info);
    if (permuted_qk_ && m.rows != QkRows::kNone) {
      const int64_t heads = m.rows == QkRows::kQ ? config_.num_heads : config_.num_kv_heads;
      if (t.dim(0) % (2 * heads) != 0)
        fail(ErrorKind::kBadInput, "{}: tensor {} has {} rows, not a multiple of 2 * {} heads",
             path(), label, t.dim(0), heads);
      t = reorder_qk_rows(t, heads, /*to_gguf=*/false);
    }
    check_loaded_tensor(t, label, expected_shape, path());
    return t;
  }

  std::unique_ptr<Tokenizer> tokenizer() const override {
    const std::string model = file_->get_string("tokenizer.ggml.model");
    if (model == "llama")
      fail(
          ErrorKind::kBadInput,
          "{}: SentencePiece tokenizer in GGUF (tokenizer.ggml.model = llama) is not supported yet",
          path());
    return make_bpe_tokenizer(bpe_spec_from_gguf(*file_), path());
  }

  void write_tokenizer(const std::string& folder) const override {
    if (file_->get_string("tokenizer.ggml.model") == "llama")
      fail(ErrorKind::kBadInput,
           "{}: writing a SentencePiece tokenizer from GGUF (tokenizer.ggml.model = llama) is not "
           "supported",
           path());
    write_bpe_tokenizer(bpe_spec_from_gguf(*file_), folder);
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail(ErrorKind::kBadInput, "{}: {}", path(), what);
  }

  int64_t positive(const std::string& key) const {
    const int64_t v = file_->get_int(key);
    if (v <= 0) bad(fmt::format("key '{}' must be positive, is {}", key, v));
    return v;
  }

  void read_config() {
    ModelConfig& c = config_;
    c.architecture = file_->get_string("general.architecture");
    if (c.architecture != "llama" && c.architecture != "mistral" && c.architecture != "qwen2")
      bad(fmt::format("architecture '{}' is not supported (llama, mistral, qwen2)",
                      c.architecture));
    // llama.cpp permutes Q/K only for the interleaved-RoPE architectures; qwen2 keeps HF order.
    permuted_qk_ = c.architecture != "qwen2";
    const std::string a = c.architecture + ".";
    c.num_layers = positive(a + "block_count");
    c.hidden_size = positive(a + "embedding_length");
    c.intermediate_size = positive(a + "feed_forward_length");
    c.num_heads = positive(a + "attention.head_count");
    c.num_kv_heads = file_->has_key(a + "attention.head_count_kv")
                         ? positive(a + "attention.head_count_kv")
                         : c.num_heads;
    if (c.num_heads % c.num_kv_heads != 0)
      bad(fmt::format("{} attention heads are not a multiple of {} key-value heads", c.num_heads,
                      c.num_kv_heads));
    if (file_->has_key(a + "attention.key_length")) {
      c.head_dim = positive(a + "attention.key_length");
    } else if (file_->has_key(a + "rope.dimension_count")) {
      c.head_dim = positive(a + "rope.dimension_count");
    } else {
      if (c.hidden_size % c.num_heads != 0)
        bad(fmt::format("hidden size {} is not a multiple of {} heads", c.hidden_size,
                        c.num_heads));
      c.head_dim = c.hidden_size / c.num_heads;
    }
    if (c.head_dim % 2 != 0) bad(fmt::format("head dimension {} is odd", c.head_dim));
    c.max_position_embeddings = file_->get_int(a + "context_length", 0);
    c.rope_theta = file_->get_float(a + "rope.freq_base", 10000.0);
    c.rms_norm_eps = file_->get_float(a + "attention.layer_norm_rms_epsilon", 1e-5);

    if (file_->has_key(a + "vocab_size")) {
      c.vocab_size = positive(a + "vocab_size");
    } else if (file_->has_key("tokenizer.ggml.tokens")) {
      c.vocab_size = static_cast<int64_t>(file_->get_string_array("tokenizer.ggml.tokens").size());
    } else if (const auto* emb = file_->find_tensor("token_embd.weight")) {
      c.vocab_size = emb->shape()[0];
    } else {
      bad("no vocabulary size: no vocab_size key, tokenizer.ggml.tokens or token_embd.weight");
    }

    c.tie_word_embeddings = file_->find_tensor("output.weight") == nullptr;
    c.attention_bias = file_->find_tensor("blk.0.attn_q.bias") != nullptr;
    c.bos_token_id = file_->get_int("tokenizer.ggml.bos_token_id", -1);
    c.eos_token_id = file_->get_int("tokenizer.ggml.eos_token_id", -1);
    read_rope_scaling(a);
  }

  void read_rope_scaling(const std::string& a) {
    RopeScaling& s = config_.rope_scaling;
    const std::string type = file_->has_key(a + "rope.scaling.type")
                                 ? file_->get_string(a + "rope.scaling.type")
                                 : std::string("none");
    if (type == "linear") {
      s.type = RopeScaling::Type::kLinear;
      s.factor = file_->get_float(a + "rope.scaling.factor");
      if (!(s.factor > 0)) bad(fmt::format("rope.scaling.factor {} is not positive", s.factor));
    } else if (type != "none") {
      bad(fmt::format("rope scaling type '{}' is not supported", type));
    }
    // llama3 scaling is stored only as its per-frequency factors; recover the parameters by
    // checking the standard ones against them.
    const GgufTensorInfo* freqs = file_->find_tensor("rope_freqs.weight");
    if (freqs == nullptr) return;
    const Tensor stored = file_->dequantize(*freqs);
    RopeScaling guess;
    guess.type = RopeScaling::Type::kLlama3;
    guess.factor = *std::max_element(stored.values().begin(), stored.values().end());
    guess.low_freq_factor = 1.0;
    guess.high_freq_factor = 4.0;
    guess.original_max_position_embeddings =
        file_->get_int(a + "rope.scaling.original_context_length", 8192);
    const auto expected = llama3_rope_factors(config_.rope_theta, config_.head_dim, guess);
    bool match = static_cast<int64_t>(expected.size()) == stored.numel();
    for (int64_t k = 0; match && k < stored.numel(); ++k)
      match = std::abs(expected[k] - stored.data()[k]) <= 1e-3 * std::abs(expected[k]);
    if (!match)
      bad("rope_freqs.weight does not match llama3 rope scaling with low/high frequency factors "
          "1/4; other rope factor tables are not supported");
    s = guess;
  }

  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  bool permuted_qk_ = true;
  std::map<std::string, MappedName> names_;  // Hugging Face name -> GGUF tensor
};

}  // namespace

std::unique_ptr<ModelSource> open_gguf_model(const std::string& path) {
  return std::make_unique<GgufModelSource>(path);
}

}  // namespace skim::io
