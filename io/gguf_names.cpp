#include "io/gguf_names.h"

#include <algorithm>
#include <map>
#include <regex>
#include <vector>

#include "src/core/error.h"

namespace skim::io {
namespace {

const std::map<std::string, std::string>& global_names() {  // GGUF -> Hugging Face
  static const std::map<std::string, std::string> names = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  return names;
}

const std::map<std::string, std::string>& layer_names() {  // inside blk.N. / model.layers.N.
  static const std::map<std::string, std::string> names = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},
      {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
  };
  return names;
}

}  // namespace

std::optional<std::string> hf_tensor_name(const std::string& gguf, QkRows* rows) {
  *rows = QkRows::kNone;
  if (auto it = global_names().find(gguf); it != global_names().end()) return it->second;
  static const std::regex kBlock(R"(blk\.(\d+)\.(.+))");
  std::smatch m;
  if (!std::regex_match(gguf, m, kBlock)) return std::nullopt;
  auto it = layer_names().find(m[2].str());
  if (it == layer_names().end()) return std::nullopt;
  if (it->first.starts_with("attn_q.")) *rows = QkRows::kQ;
  if (it->first.starts_with("attn_k.")) *rows = QkRows::kK;
  return "model.layers." + m[1].str() + "." + it->second;
}

std::string gguf_tensor_name(const std::string& hf) {
  for (const auto& [gguf, name] : global_names())
    if (name == hf) return gguf;
  static const std::regex kLayer(R"(model\.layers\.(\d+)\.(.+))");
  std::smatch m;
  if (std::regex_match(hf, m, kLayer))
    for (const auto& [gguf, name] : layer_names())
      if (name == m[2].str()) return "blk." + m[1].str() + "." + gguf;
  fail(ErrorKind::kInternal, "no GGUF name for tensor {}", hf);
}

Tensor reorder_qk_rows(const Tensor& t, int64_t n_heads, bool to_gguf) {
  const int64_t rows = t.dim(0), cols = t.numel() / rows, hd = rows / n_heads, half = hd / 2;
  std::vector<float> out(static_cast<size_t>(t.numel()));
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t p = 0; p < 2; ++p)
      for (int64_t i = 0; i < half; ++i) {
        const int64_t hf_row = h * hd + p * half + i, gguf_row = h * hd + 2 * i + p;
        const int64_t from = to_gguf ? hf_row : gguf_row, to = to_gguf ? gguf_row : hf_row;
        std::copy_n(t.data() + from * cols, cols, out.data() + to * cols);
      }
  return Tensor(t.shape(), std::move(out));
}

}  // namespace skim::io
