// The real SmolLM2-135M GGUF: config, tensor list, and dequantized values compared with the
// Python `gguf` package (numbers printed by scripts/reference_gguf_values.py).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/model_source.h"

namespace skim {
namespace {

const std::string kModel = std::string(SKIM_SOURCE_DIR) + "/data/SmolLM2-135M-Instruct.Q4_1.gguf";

bool have_model() {
  if (std::filesystem::exists(kModel)) return true;
  ADD_FAILURE() << kModel << " is missing: run scripts/fetch_data.sh";
  return false;
}

struct RowRef {
  int64_t row;
  double sum;
  double abs_sum;
};
struct TensorRef {
  const char* gguf_name;
  const char* hf_name;
  int64_t rows, cols;
  double first, last;
  std::vector<RowRef> row_sums;
};

// From scripts/reference_gguf_values.py (gguf 0.19.0, numpy 2.4.6). Q/K rows are in Hugging Face
// order (the script undoes llama.cpp's permutation with numpy), all others in file order.
const std::vector<TensorRef> kRefs = {
    // token_embd.weight (Q8_0) shape [49152, 576]
    {"token_embd.weight",
     "model.embed_tokens.weight",
     49152,
     576,
     -0.10654449462890625,
     -0.0417022705078125,
     {
         {0, -2.2541093826293945, 54.692320823669434},
         {1, 0.35922718048095703, 43.44069766998291},
         {1000, 1.9784250259399414, 51.0777006149292},
         {49151, -0.4662208557128906, 70.8194694519043},
     }},
    // blk.0.ffn_down.weight (Q4_1) shape [576, 1536]
    {"blk.0.ffn_down.weight",
     "model.layers.0.mlp.down_proj.weight",
     576,
     1536,
     -0.330810546875,
     -0.181365966796875,
     {
         {0, -17.089996337890625, 392.5808410644531},
         {300, -10.055740356445312, 221.2659454345703},
         {575, 1.4561767578125, 160.23709106445312},
     }},
    // blk.7.attn_v.weight (Q4_1) shape [192, 576]
    {"blk.7.attn_v.weight",
     "model.layers.7.self_attn.v_proj.weight",
     192,
     576,
     0.019622802734375,
     -0.030517578125,
     {
         {0, 1.1080322265625, 74.237060546875},
         {100, -0.47064208984375, 92.21661376953125},
         {191, 2.509765625, 45.08538818359375},
     }},
    // blk.29.ffn_gate.weight (Q4_1) shape [1536, 576]
    {"blk.29.ffn_gate.weight",
     "model.layers.29.mlp.gate_proj.weight",
     1536,
     576,
     -0.253387451171875,
     0.26190185546875,
     {
         {0, -1.067779541015625, 72.80160522460938},
         {1535, 1.8589935302734375, 61.66807556152344},
     }},
    // output_norm.weight (F32) shape [1, 576]
    {"output_norm.weight",
     "model.norm.weight",
     1,
     576,
     1.7578125,
     1.984375,
     {
         {0, 1038.33203125, 1045.09765625},
     }},
    // blk.3.attn_norm.weight (F32) shape [1, 576]
    {"blk.3.attn_norm.weight",
     "model.layers.3.input_layernorm.weight",
     1,
     576,
     0.1376953125,
     0.388671875,
     {
         {0, 166.85116577148438, 166.85116577148438},
     }},
    // Q/K after undoing the converter permutation (Hugging Face row order)
    // blk.2.attn_q.weight (Q4_1) shape [576, 576]
    {"blk.2.attn_q.weight",
     "model.layers.2.self_attn.q_proj.weight",
     576,
     576,
     -0.027923583984375,
     -0.086669921875,
     {
         {0, 2.261871337890625, 21.036376953125},
         {1, -0.22088623046875, 20.006027221679688},
         {32, -1.8427581787109375, 23.747589111328125},
         {63, 10.564208984375, 139.2469482421875},
         {575, -0.617462158203125, 128.28768920898438},
     }},
    // blk.2.attn_k.weight (Q4_1) shape [192, 576]
    {"blk.2.attn_k.weight",
     "model.layers.2.self_attn.k_proj.weight",
     192,
     576,
     0.010101318359375,
     0.065185546875,
     {
         {0, 0.514404296875, 64.050537109375},
         {1, 0.5523681640625, 60.5225830078125},
         {32, -0.19366455078125, 67.766357421875},
         {191, -5.627716064453125, 137.48587036132812},
     }},
};

bool is_qk(const std::string& gguf_name) {
  return gguf_name.find("attn_q") != std::string::npos ||
         gguf_name.find("attn_k") != std::string::npos;
}

void expect_matches(const Tensor& t, const TensorRef& ref) {
  ASSERT_EQ(t.numel(), ref.rows * ref.cols);
  EXPECT_NEAR(t.data()[0], ref.first, 1e-6 * std::abs(ref.first));
  EXPECT_NEAR(t.data()[t.numel() - 1], ref.last, 1e-6 * std::abs(ref.last));
  for (const RowRef& r : ref.row_sums) {
    SCOPED_TRACE(r.row);
    double sum = 0, abs_sum = 0;
    for (int64_t j = 0; j < ref.cols; ++j) {
      const double v = t.data()[r.row * ref.cols + j];
      sum += v;
      abs_sum += std::abs(v);
    }
    // Relative to the sum of magnitudes: a row sum may cancel to near zero.
    EXPECT_NEAR(sum, r.sum, 1e-6 * r.abs_sum);
    EXPECT_NEAR(abs_sum, r.abs_sum, 1e-6 * r.abs_sum);
  }
}

TEST(GgufSmolLM2, Config) {
  if (!have_model()) return;
  auto src = io::open_gguf_model(kModel);
  const ModelConfig& c = src->config();
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rope_theta, 1e5);
  EXPECT_NEAR(c.rms_norm_eps, 1e-5, 1e-12);  // stored as float32
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_FALSE(src->has_tensor("lm_head.weight"));
}

TEST(GgufSmolLM2, TensorList) {
  if (!have_model()) return;
  auto f = io::GgufFile::open(kModel);
  EXPECT_EQ(f->version(), 3u);
  ASSERT_EQ(f->tensors().size(), 272u);
  std::map<io::GgmlType, int> counts;
  for (const auto& t : f->tensors()) ++counts[t.type];
  EXPECT_EQ(counts[io::GgmlType::kQ4_1], 210);
  EXPECT_EQ(counts[io::GgmlType::kF32], 61);
  EXPECT_EQ(counts[io::GgmlType::kQ8_0], 1);
  EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens").size(), 49152u);
  EXPECT_EQ(f->get_string_array("tokenizer.ggml.merges").size(), 48900u);
  EXPECT_EQ(f->get_string("tokenizer.ggml.pre"), "smollm");
  const auto* emb = f->find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape(), (std::vector<int64_t>{49152, 576}));

  auto src = io::open_gguf_model(kModel);
  int mapped = 0;
  for (int l = 0; l < 30; ++l)
    for (const char* n :
         {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
          "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
          "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"})
      mapped += src->has_tensor("model.layers." + std::to_string(l) + "." + n);
  mapped += src->has_tensor("model.embed_tokens.weight") + src->has_tensor("model.norm.weight");
  EXPECT_EQ(mapped, 272);
}

TEST(GgufSmolLM2, DequantizedValuesMatchThePythonGgufPackage) {
  if (!have_model()) return;
  auto f = io::GgufFile::open(kModel);
  auto src = io::open_gguf_model(kModel);
  for (const TensorRef& ref : kRefs) {
    SCOPED_TRACE(ref.gguf_name);
    const bool vector = std::string(ref.hf_name).ends_with("norm.weight");
    const std::vector<int64_t> shape =
        vector ? std::vector<int64_t>{ref.cols} : std::vector<int64_t>{ref.rows, ref.cols};
    if (!is_qk(ref.gguf_name)) {  // file order is Hugging Face order
      const auto* info = f->find_tensor(ref.gguf_name);
      ASSERT_NE(info, nullptr);
      expect_matches(f->dequantize(*info), ref);
    }
    expect_matches(src->load(ref.hf_name, shape), ref);
  }
}

}  // namespace
}  // namespace skim
