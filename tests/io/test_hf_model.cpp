// The Hugging Face folder ModelSource and open_model's dispatch, on a tiny synthetic LLaMA
// written here (config.json + safetensors, no tokenizer).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "io/model_source.h"
#include "io/safetensors.h"
#include "src/core/error.h"

namespace skim::io {
namespace {

namespace fs = std::filesystem;

constexpr const char* kConfig = R"({
  "architectures": ["LlamaForCausalLM"], "hidden_size": 8, "intermediate_size": 12,
  "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
  "vocab_size": 16, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
  "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2
})";

// Every tensor of the tiny model with its shape.
std::map<std::string, std::vector<int64_t>> tiny_shapes() {
  std::map<std::string, std::vector<int64_t>> s = {
      {"model.embed_tokens.weight", {16, 8}},
      {"model.norm.weight", {8}},
      {"lm_head.weight", {16, 8}},
  };
  for (int i = 0; i < 2; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    s[p + "input_layernorm.weight"] = {8};
    s[p + "post_attention_layernorm.weight"] = {8};
    s[p + "self_attn.q_proj.weight"] = {8, 8};
    s[p + "self_attn.k_proj.weight"] = {4, 8};
    s[p + "self_attn.v_proj.weight"] = {4, 8};
    s[p + "self_attn.o_proj.weight"] = {8, 8};
    s[p + "mlp.gate_proj.weight"] = {12, 8};
    s[p + "mlp.up_proj.weight"] = {12, 8};
    s[p + "mlp.down_proj.weight"] = {8, 12};
  }
  return s;
}

// Values k / 64 with |k| < 128: exact in F32, F16 and BF16, so every load must match exactly.
Tensor tiny_values(const std::vector<int64_t>& shape, int seed) {
  Tensor t(shape);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data()[i] = static_cast<float>((i * 37 + seed * 11) % 255 - 127) / 64.0f;
  return t;
}

// The storage dtype varies across tensors so all three float conversions are exercised.
StDtype dtype_for(int index) {
  constexpr StDtype kCycle[] = {StDtype::kBF16, StDtype::kF16, StDtype::kF32};
  return kCycle[index % 3];
}

class HfModel : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "skim_hf_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes config.json and the weights, split over `shards` files (1: model.safetensors).
  void write_model(const fs::path& folder, int shards = 1,
                   const std::function<void(SafetensorsWriter&)>& extra = nullptr) {
    fs::create_directories(folder);
    std::ofstream(folder / "config.json") << kConfig;
    std::vector<std::unique_ptr<SafetensorsWriter>> writers;
    for (int s = 0; s < shards; ++s) writers.push_back(std::make_unique<SafetensorsWriter>());
    nlohmann::json weight_map = nlohmann::json::object();
    int k = 0;
    for (const auto& [name, shape] : tiny_shapes()) {
      const int s = k % shards;
      writers[s]->add(name, tiny_values(shape, k), dtype_for(k));
      weight_map[name] = shard_name(s, shards);
      ++k;
    }
    if (extra) extra(*writers[0]);
    for (int s = 0; s < shards; ++s) writers[s]->write((folder / shard_name(s, shards)).string());
    if (shards > 1)
      std::ofstream(folder / "model.safetensors.index.json")
          << nlohmann::json({{"metadata", nlohmann::json::object()}, {"weight_map", weight_map}})
                 .dump();
  }
  static std::string shard_name(int s, int shards) {
    if (shards == 1) return "model.safetensors";
    return "model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(shards) +
           ".safetensors";
  }

  // Loads every tensor and compares with what was written.
  static void expect_all_tensors(const ModelSource& m) {
    int k = 0;
    for (const auto& [name, shape] : tiny_shapes()) {
      SCOPED_TRACE(name);
      ASSERT_TRUE(m.has_tensor(name));
      const Tensor got = m.load(name, shape);
      const Tensor want = tiny_values(shape, k++);
      ASSERT_EQ(got.shape(), shape);
      for (int64_t i = 0; i < got.numel(); ++i) ASSERT_EQ(got.data()[i], want.data()[i]) << i;
    }
  }

  fs::path dir_;
};

template <typename F>
Error catch_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a skim::Error";
  return Error(ErrorKind::kInternal, "");
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST_F(HfModel, LoadsConfigAndEveryTensor) {
  write_model(dir_ / "tiny");
  const auto m = open_model((dir_ / "tiny").string());
  EXPECT_EQ(m->path(), (dir_ / "tiny").string());
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.hidden_size, 8);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_kv_heads, 1);
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_EQ(c.eos_token_id, 2);
  expect_all_tensors(*m);
  EXPECT_FALSE(m->has_tensor("model.layers.2.mlp.up_proj.weight"));
}

TEST_F(HfModel, ShardedFolder) {
  write_model(dir_ / "sharded", 3);
  ASSERT_TRUE(fs::exists(dir_ / "sharded" / "model.safetensors.index.json"));
  const auto m = open_hf_model((dir_ / "sharded").string());
  expect_all_tensors(*m);
}

TEST_F(HfModel, NanWeightNamesTheTensor) {
  const std::string bad = "model.layers.1.mlp.extra.weight";
  write_model(dir_ / "nan", 1, [&](SafetensorsWriter& w) {
    Tensor t({2, 3});
    t.data()[4] = std::nanf("");
    w.add(bad, std::move(t), StDtype::kF16);
  });
  const auto m = open_model((dir_ / "nan").string());
  const Error e = catch_error([&] { m->load(bad, {2, 3}); });
  EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  EXPECT_TRUE(contains(e.what(), bad)) << e.what();
  EXPECT_TRUE(contains(e.what(), "model.safetensors")) << e.what();
  expect_all_tensors(*m);  // the other tensors are unaffected
}

TEST_F(HfModel, WrongShapeMissingTensorAndWrongDtype) {
  write_model(dir_ / "m", 1, [](SafetensorsWriter& w) {
    const std::vector<int32_t> ids = {1, 2, 3};
    w.add_typed<int32_t>("model.ids", StDtype::kI32, {3}, ids);
  });
  const auto m = open_model((dir_ / "m").string());
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  Error e = catch_error([&] { m->load(q, {8, 4}); });
  EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  EXPECT_TRUE(contains(e.what(), q) && contains(e.what(), "[8, 4]")) << e.what();

  const std::string absent = "model.layers.7.self_attn.q_proj.weight";
  e = catch_error([&] { m->load(absent, {8, 8}); });
  EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  EXPECT_TRUE(contains(e.what(), absent) && contains(e.what(), (dir_ / "m").string())) << e.what();

  e = catch_error([&] { m->load("model.ids", {3}); });
  EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  EXPECT_TRUE(contains(e.what(), "model.ids")) << e.what();

  // No tokenizer.json or tokenizer.model: asked for lazily, so only tokenizer() fails.
  e = catch_error([&] { m->tokenizer(); });
  EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  EXPECT_TRUE(contains(e.what(), (dir_ / "m").string())) << e.what();
}

TEST_F(HfModel, OpenModelRejectsWhatItCannotOpen) {
  const auto expect_bad = [](const std::string& path, const std::string& part) {
    const Error e = catch_error([&] { open_model(path); });
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput) << e.what();
    EXPECT_TRUE(contains(e.what(), part)) << e.what();
  };
  expect_bad((dir_ / "does_not_exist").string(), "does_not_exist");

  fs::create_directories(dir_ / "empty");
  expect_bad((dir_ / "empty").string(), "config.json");

  std::ofstream(dir_ / "weights.bin") << "GGUX not a gguf";
  expect_bad((dir_ / "weights.bin").string(), "weights.bin");

  fs::create_directories(dir_ / "noweights");
  std::ofstream(dir_ / "noweights" / "config.json") << kConfig;
  expect_bad((dir_ / "noweights").string(), "model.safetensors");

  fs::create_directories(dir_ / "badcfg");
  std::ofstream(dir_ / "badcfg" / "config.json") << R"({"architectures": ["LlamaForCausalLM"]})";
  expect_bad((dir_ / "badcfg").string(), "hidden_size");
}

TEST(OpenModel, GgufFileGoesToTheGgufReader) {
  const std::string path = std::string(SKIM_SOURCE_DIR) + "/data/SmolLM2-135M-Instruct.Q4_1.gguf";
  ASSERT_TRUE(fs::exists(path)) << path << " is missing: run scripts/fetch_data.sh";
  const auto m = open_model(path);
  EXPECT_EQ(m->config().hidden_size, 576);
  EXPECT_EQ(m->config().num_layers, 30);
  EXPECT_TRUE(m->has_tensor("model.norm.weight"));
}

}  // namespace
}  // namespace skim::io
