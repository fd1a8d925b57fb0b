// A quantized model folder read back and run from its packed form, against the same model with
// dense fp32 linears holding the dequantized matrices (quant::dequantize of the layers before
// packing): layer forwards, perplexity, greedy generation, and the index checks.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "io/tokenizer.h"
#include "src/core/error.h"
#include "src/model/llama_model.h"
#include "src/pipeline/generate.h"
#include "src/pipeline/packed_linear.h"
#include "src/pipeline/packed_model_source.h"
#include "src/pipeline/perplexity.h"
#include "tests/pipeline/packed_test_model.h"

namespace skim::pipeline {
namespace {

namespace fs = std::filesystem;
using testing::OverrideSource;
using testing::SyntheticSource;
using testing::SyntheticSpec;
using testing::TempFolder;

SyntheticSpec spec() {
  return testing::packed_test_spec(11);
}

double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    norm += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff / norm);
}

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int32_t& t : out) t = dist(rng);
  return out;
}

class PackedModel : public ::testing::Test {
 protected:
  PackedModel()
      : folder_("packed_model"),
        synthetic_(spec()),
        dequantized_(testing::write_packed_test_model(synthetic_, folder_.path())),
        reference_(synthetic_, dequantized_) {}

  TempFolder folder_;
  SyntheticSource synthetic_;
  std::map<std::string, Tensor> dequantized_;
  OverrideSource reference_;
};

TEST_F(PackedModel, SourceLoadsIndexConfigAndTensors) {
  const PackedModelSource packed(folder_.path());
  EXPECT_EQ(packed.method(), "kmeans");
  EXPECT_GT(packed.bits_per_weight(), 3.0);
  EXPECT_LT(packed.bits_per_weight(), 6.0);
  const ModelConfig& c = packed.config();
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_TRUE(packed.has_tensor("model.embed_tokens.weight"));
  EXPECT_TRUE(packed.has_tensor("lm_head.weight"));
  EXPECT_TRUE(packed.has_tensor("model.layers.1.input_layernorm.weight"));
  EXPECT_TRUE(packed.has_tensor("model.layers.0.mlp.down_proj.weight"));
  EXPECT_TRUE(packed.has_tensor("model.layers.1.self_attn.q_proj.weight"));
  EXPECT_FALSE(packed.has_tensor("model.layers.0.mlp.nothing.weight"));
  EXPECT_FALSE(packed.has_tensor("model.layers.7.input_layernorm.weight"));
  // Dense tensors are stored fp32 here, so they come back exactly; a quantized linear comes back
  // as its dequantized matrix.
  auto values = [](const Tensor& t) { return std::vector<float>(t.data(), t.data() + t.numel()); };
  EXPECT_EQ(values(packed.load("model.embed_tokens.weight", {256, 64})),
            values(synthetic_.tensor("model.embed_tokens.weight")));
  EXPECT_EQ(values(packed.load("model.layers.1.post_attention_layernorm.weight", {64})),
            values(synthetic_.tensor("model.layers.1.post_attention_layernorm.weight")));
  EXPECT_EQ(values(packed.load("model.layers.0.mlp.up_proj.weight", {96, 64})),
            values(dequantized_.at("model.layers.0.mlp.up_proj.weight")));
  EXPECT_EQ(values(packed.load("model.layers.0.mlp.gate_proj.weight", {96, 64})),
            values(dequantized_.at("model.layers.0.mlp.gate_proj.weight")));
  try {
    packed.load("model.layers.0.mlp.up_proj.weight", {64, 96});
    FAIL() << "expected a shape error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  }
  // The tokenizer written into the folder is the byte-level one: id = byte.
  const auto tok = packed.tokenizer();
  EXPECT_EQ(tok->encode("Ab 9"), (std::vector<int32_t>{'A', 'b', ' ', '9'}));
}

TEST_F(PackedModel, PackedLayerMatchesDequantizedDenseLayer) {
  const PackedModelSource packed(folder_.path());
  for (int64_t i = 0; i < 2; ++i) {
    const model::DecoderLayer fast = packed.load_layer(i);
    const model::DecoderLayer dense = model::DecoderLayer::load(reference_, i);
    for (int k = 0; k < model::kLinearKindCount; ++k) {
      const model::Linear& l = fast.linear(static_cast<model::LinearKind>(k));
      EXPECT_TRUE(dynamic_cast<const PackedLutLinear*>(&l) != nullptr ||
                  dynamic_cast<const PackedUniformLinear*>(&l) != nullptr)
          << "layer " << i << " linear " << k << " is not packed";
    }
    // (batch, seq): several tokens go through gemm, one token through gemv.
    for (auto [batch, seq] : {std::pair<int64_t, int64_t>{2, 7}, {1, 1}, {3, 1}}) {
      std::mt19937 rng(static_cast<uint32_t>(100 + i));
      std::normal_distribution<float> dist(0.0f, 1.0f);
      std::vector<float> a(static_cast<size_t>(batch * seq * 64));
      for (float& x : a) x = dist(rng);
      std::vector<float> b = a;
      fast.forward(a.data(), batch, seq);
      dense.forward(b.data(), batch, seq);
      EXPECT_LT(relative_error(a, b), 1e-5)
          << "layer " << i << " batch " << batch << " seq " << seq;
    }
  }
}

TEST_F(PackedModel, PerplexityMatchesDequantizedDense) {
  const PackedModelSource packed(folder_.path());
  const std::vector<int32_t> tokens = random_tokens(4 * 32 + 5, 256, 3);
  PerplexityOptions options;
  options.seq_len = 32;
  const PerplexityResult dense = perplexity_of_tokens(reference_, tokens, "random", options);
  options.layer_loader = [&packed](int64_t i) { return packed.load_layer(i); };
  const PerplexityResult fast = perplexity_of_tokens(packed, tokens, "random", options);
  EXPECT_EQ(fast.windows, 4);
  EXPECT_EQ(fast.predicted_tokens, dense.predicted_tokens);
  EXPECT_NEAR(fast.perplexity, dense.perplexity, 1e-5 * dense.perplexity);
  // Quantization must have changed something, or the comparison above proves little.
  PerplexityOptions plain;
  plain.seq_len = 32;
  const PerplexityResult original = perplexity_of_tokens(synthetic_, tokens, "random", plain);
  EXPECT_GT(std::abs(original.perplexity - dense.perplexity), 1e-3 * dense.perplexity);
}

// Greedy generation with the KV cache against recomputing the full forward for every new token
// and taking the argmax of the last position.
std::vector<int32_t> greedy_by_full_forward(const model::LlamaModel& m,
                                            std::vector<int32_t> context, int64_t n) {
  std::vector<int32_t> out;
  const int64_t vocab = m.config().vocab_size;
  for (int64_t step = 0; step < n; ++step) {
    const Tensor logits = m.forward(context.data(), 1, static_cast<int64_t>(context.size()));
    const float* last = logits.data() + (static_cast<int64_t>(context.size()) - 1) * vocab;
    int32_t best = 0;
    for (int32_t v = 1; v < vocab; ++v)
      if (last[v] > last[best]) best = v;
    out.push_back(best);
    context.push_back(best);
  }
  return out;
}

TEST_F(PackedModel, GreedyGenerationMatchesFullForwardArgmax) {
  const std::vector<int32_t> prompt = random_tokens(6, 256, 5);
  GenerateOptions options;
  options.max_new_tokens = 16;
  options.stop_at_eos = false;
  {  // dense synthetic model: the KV cache alone
    const Generator generator(synthetic_);
    const auto full = model::LlamaModel::load(synthetic_, model::LlamaModel::Layers::kResident);
    EXPECT_EQ(generator.generate(prompt, options, -1), greedy_by_full_forward(full, prompt, 16));
  }
  {  // the packed folder through its packed layers, against the dequantized dense model
    const PackedModelSource packed(folder_.path());
    const Generator generator(packed, [&packed](int64_t i) { return packed.load_layer(i); });
    const auto full = model::LlamaModel::load(reference_, model::LlamaModel::Layers::kResident);
    EXPECT_EQ(generator.generate(prompt, options, -1), greedy_by_full_forward(full, prompt, 16));
  }
}

TEST_F(PackedModel, GenerateTextOnFolderAndEosStop) {
  const PackedModelSource packed(folder_.path());
  GenerateOptions options;
  options.max_new_tokens = 5;
  const GenerateResult r = generate_text(packed, "Hello", options,
                                         [&packed](int64_t i) { return packed.load_layer(i); });
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{'H', 'e', 'l', 'l', 'o'}));
  ASSERT_EQ(r.new_ids.size(), 5u);
  EXPECT_EQ(packed.tokenizer()->decode(r.new_ids), r.text);
  // With the first greedy token declared EOS, generation stops right there.
  const Generator generator(packed, [&packed](int64_t i) { return packed.load_layer(i); });
  GenerateOptions stop = options;
  stop.stop_at_eos = true;
  EXPECT_EQ(generator.generate(r.prompt_ids, stop, r.new_ids[0]),
            std::vector<int32_t>{r.new_ids[0]});
}

TEST(PickToken, GreedyAndSampling) {
  const std::vector<float> logits = {0.0f, 2.0f, 1.0f, 2.0f};
  EXPECT_EQ(pick_token(logits.data(), 4, 0.0, 0.99), 1);  // the first maximum
  // Temperature 1: p = [1, e^2, e, e^2] / 18.496, cumulative [0.0541, 0.4536, 0.6005, 1];
  // u picks its bucket.
  EXPECT_EQ(pick_token(logits.data(), 4, 1.0, 0.05), 0);
  EXPECT_EQ(pick_token(logits.data(), 4, 1.0, 0.3), 1);
  EXPECT_EQ(pick_token(logits.data(), 4, 1.0, 0.55), 2);
  EXPECT_EQ(pick_token(logits.data(), 4, 1.0, 0.9), 3);
  // Temperature 0.5 sharpens: cumulative [0.0085, 0.4728, 0.5357, 1].
  EXPECT_EQ(pick_token(logits.data(), 4, 0.5, 0.45), 1);
  EXPECT_EQ(pick_token(logits.data(), 4, 0.5, 0.50), 2);
  EXPECT_EQ(pick_token(logits.data(), 4, 0.5, 0.54), 3);
}

TEST_F(PackedModel, WriteTokenizerCopiesTheFolderTokenizer) {
  const PackedModelSource packed(folder_.path());
  const TempFolder out("packed_tok");
  packed.write_tokenizer(out.path());
  EXPECT_TRUE(fs::is_regular_file(fs::path(out.path()) / "tokenizer.json"));
  EXPECT_TRUE(fs::is_regular_file(fs::path(out.path()) / "tokenizer_config.json"));
  const auto tok = io::load_hf_tokenizer_json(out.path() + "/tokenizer.json");
  EXPECT_EQ(tok->encode("copy me"), packed.tokenizer()->encode("copy me"));
}

TEST_F(PackedModel, OpenAnyModelRecognizesTheFolder) {
  const auto source = open_any_model(folder_.path());
  EXPECT_NE(dynamic_cast<const PackedModelSource*>(source.get()), nullptr);
  try {
    open_any_model(folder_.path() + "/no-such-model");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  }
}

// Rewrites skim.json with `edit` applied, then expects kBadInput mentioning `needle`.
void expect_bad_index(const std::string& folder, const std::function<void(nlohmann::json&)>& edit,
                      const std::string& needle) {
  const std::string path = folder + "/skim.json";
  nlohmann::json index;
  std::ifstream(path) >> index;
  const nlohmann::json original = index;
  edit(index);
  std::ofstream(path) << index.dump();
  try {
    PackedModelSource source(folder);
    ADD_FAILURE() << "expected kBadInput mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  std::ofstream(path) << original.dump();
}

TEST_F(PackedModel, BadIndexIsBadInputNamingTheProblem) {
  const std::string dir = folder_.path();
  expect_bad_index(
      dir, [](nlohmann::json& j) { j["format_version"] = 2; }, "format_version");
  expect_bad_index(
      dir, [](nlohmann::json& j) { j["format"] = "other"; }, "other");
  expect_bad_index(
      dir, [](nlohmann::json& j) { j["method"] = "magic"; }, "magic");
  expect_bad_index(
      dir, [](nlohmann::json& j) { j.erase("num_layers"); }, "num_layers");
  expect_bad_index(
      dir, [](nlohmann::json& j) { j["num_layers"] = 3; }, "num_layers");
  expect_bad_index(
      dir, [](nlohmann::json& j) { j["layer_files"][1] = "layers/layer-00009.safetensors"; },
      "layer-00009.safetensors");
  // A file the index names that is gone.
  fs::remove(fs::path(dir) / "layers/layer-00001.safetensors");
  expect_bad_index(
      dir, [](nlohmann::json&) {}, "layer-00001.safetensors");
  fs::remove(fs::path(dir) / "config.json");
  expect_bad_index(
      dir, [](nlohmann::json&) {}, "config.json");
  // Not JSON at all.
  std::ofstream(dir + "/skim.json") << "{not json";
  try {
    PackedModelSource source(dir);
    ADD_FAILURE() << "expected kBadInput";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find("skim.json"), std::string::npos) << e.what();
  }
}

TEST_F(PackedModel, CorruptLayerFileIsBadInputOnLoadLayer) {
  const PackedModelSource packed(folder_.path());
  const std::string file = folder_.path() + "/layers/layer-00000.safetensors";
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(-5, std::ios::end);
  f.put('\x5a');
  f.close();
  try {
    packed.load_layer(0);
    FAIL() << "expected kBadInput";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput) << e.what();
  }
}

}  // namespace
}  // namespace skim::pipeline
