// `export` of a quantized folder built from a synthetic model: read back through the Hugging Face
// reader (in one file or in shards) or the GGUF reader, every weight equals the packed model's
// dequantized matrix (or the dense tensor) rounded to the chosen dtype.
#include "src/pipeline/export_model.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/model_source.h"
#include "src/core/error.h"
#include "src/core/half.h"
#include "src/model/llama_layer.h"
#include "src/pipeline/packed_model_source.h"
#include "tests/pipeline/packed_test_model.h"

namespace skim::pipeline {
namespace {

namespace fs = std::filesystem;
using testing::SyntheticSource;
using testing::SyntheticSpec;
using testing::TempFolder;

SyntheticSpec spec() {
  return testing::packed_test_spec(9);
}

float rounded(float x, ExportDtype dtype) {
  if (dtype == ExportDtype::kF32) return x;
  return dtype == ExportDtype::kF16 ? half_to_float(float_to_half(x))
                                    : bf16_to_float(float_to_bf16(x));
}

void expect_rounded_equal(const Tensor& got, const Tensor& reference, ExportDtype dtype,
                          const std::string& name) {
  ASSERT_EQ(got.shape(), reference.shape()) << name;
  for (int64_t i = 0; i < got.numel(); ++i)
    ASSERT_EQ(got.data()[i], rounded(reference.data()[i], dtype)) << name << " element " << i;
}

void check_export(ExportDtype dtype, int64_t shard_bytes, bool expect_shards) {
  const SyntheticSource source(spec());
  const TempFolder dir("export");
  const std::string packed = dir.path() + "/packed", out = dir.path() + "/hf";
  const auto dequantized = testing::write_packed_test_model(source, packed);
  export_hf(packed, out, {.dtype = dtype, .max_shard_bytes = shard_bytes});

  EXPECT_EQ(fs::exists(fs::path(out) / "model.safetensors.index.json"), expect_shards);
  EXPECT_FALSE(fs::exists(out + ".partial"));
  const auto hf = io::open_hf_model(out);
  const ModelConfig& c = hf->config();
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.hidden_size, 64);
  for (int64_t i = 0; i < c.num_layers; ++i)
    for (auto kind : model::kLinearKinds) {
      const std::string name =
          fmt::format("model.layers.{}.{}.weight", i, model::linear_kind_name(kind));
      const auto shape = model::linear_shape(c, kind);
      expect_rounded_equal(hf->load(name, {shape.out, shape.in}), dequantized.at(name), dtype,
                           name);
    }
  for (const std::string name : {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
                                 "model.layers.1.input_layernorm.weight"}) {
    const Tensor& ref = source.tensor(name);
    expect_rounded_equal(hf->load(name, ref.shape()), ref, dtype, name);
  }
  // The tokenizer came along.
  const auto tok = hf->tokenizer();
  EXPECT_EQ(tok->encode("ab").size(), 2u);
}

TEST(ExportHf, OneFileBf16) {
  check_export(ExportDtype::kBF16, int64_t{1} << 30, false);
}

TEST(ExportHf, ShardsF16) {
  check_export(ExportDtype::kF16, 16 << 10, true);
}

TEST(ExportGguf, TheGgufReaderGivesBackThePackedModel) {
  const SyntheticSource source(spec());
  const TempFolder dir("export-gguf");
  const std::string packed = dir.path() + "/packed", out = dir.path() + "/model.gguf";
  const auto dequantized = testing::write_packed_test_model(source, packed);
  export_gguf(packed, out, {.dtype = ExportDtype::kF16});

  // io/gguf_model.cpp maps llama.cpp's names back and undoes the Q/K row order.
  const auto gguf = io::open_gguf_model(out);
  const ModelConfig& c = gguf->config();
  const ModelConfig& ref = source.config();
  EXPECT_EQ(c.architecture, ref.architecture);
  EXPECT_EQ(c.num_layers, ref.num_layers);
  EXPECT_EQ(c.hidden_size, ref.hidden_size);
  EXPECT_EQ(c.intermediate_size, ref.intermediate_size);
  EXPECT_EQ(c.num_heads, ref.num_heads);
  EXPECT_EQ(c.num_kv_heads, ref.num_kv_heads);
  EXPECT_EQ(c.head_dim, ref.head_dim);
  EXPECT_EQ(c.vocab_size, ref.vocab_size);
  EXPECT_EQ(c.tie_word_embeddings, ref.tie_word_embeddings);
  EXPECT_EQ(c.max_position_embeddings, ref.max_position_embeddings);
  EXPECT_EQ(c.rope_theta, static_cast<double>(static_cast<float>(ref.rope_theta)));
  for (int64_t i = 0; i < c.num_layers; ++i)
    for (auto kind : model::kLinearKinds) {
      const std::string name =
          fmt::format("model.layers.{}.{}.weight", i, model::linear_kind_name(kind));
      const auto shape = model::linear_shape(c, kind);
      expect_rounded_equal(gguf->load(name, {shape.out, shape.in}), dequantized.at(name),
                           ExportDtype::kF16, name);
    }
  for (const std::string name : {"model.embed_tokens.weight", "lm_head.weight"}) {
    const Tensor& r = source.tensor(name);
    expect_rounded_equal(gguf->load(name, r.shape()), r, ExportDtype::kF16, name);
  }
  for (const std::string name : {"model.norm.weight", "model.layers.1.input_layernorm.weight",
                                 "model.layers.0.post_attention_layernorm.weight"}) {
    const Tensor& r = source.tensor(name);
    const Tensor got = gguf->load(name, r.shape());
    EXPECT_EQ(got.values()[0], r.values()[0]) << name << " (norms stay F32)";
    expect_rounded_equal(got, r, ExportDtype::kF32, name);
  }
  // The same tokens from the GGUF's tokenizer as from the folder's.
  const std::string text = "Hello, world! 123 caf\xc3\xa9";
  EXPECT_EQ(gguf->tokenizer()->encode(text), PackedModelSource(packed).tokenizer()->encode(text));
}

TEST(ExportHf, AnExistingOutputIsRefused) {
  const SyntheticSource source(spec());
  const TempFolder dir("export-exists");
  const std::string packed = dir.path() + "/packed", out = dir.path() + "/hf";
  testing::write_packed_test_model(source, packed);
  fs::create_directories(out);
  try {
    export_hf(packed, out, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
  }
}

}  // namespace
}  // namespace skim::pipeline
