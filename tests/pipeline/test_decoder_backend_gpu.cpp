// Eval and generate through the CUDA backends against the CPU backends (label gpu): a packed
// folder (K-means LUT linears run by the LUT kernels, RTN linears dequantized to fp16) and the
// dense synthetic model (fp16 weights through cuBLAS). Bounds: the packed perplexity agrees to
// 0.1% (the bound eval promises); the dense fp16 weights and fp16-rounded GEMM inputs differ from
// the CPU's fp32 by about 2^-11 relative per product, so the dense model gets 1%; the decode
// steps' logits (the prompt, then one token at a time against the KV cache) agree within 1% of
// their largest magnitude, and so do the linear-group inputs a layer captures (quantize's
// calibration forward) and the states after it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "comm/cuda_devices.h"
#include "src/pipeline/decoder_backend.h"
#include "src/pipeline/generate.h"
#include "src/pipeline/packed_model_source.h"
#include "src/pipeline/perplexity.h"
#include "tests/pipeline/packed_test_model.h"

namespace skim::pipeline {
namespace {

std::vector<int32_t> random_tokens(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, 255);
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int32_t& t : out) t = dist(rng);
  return out;
}

class CudaBackend : public ::testing::Test {
 protected:
  void SetUp() override {
    if (comm::cuda_device_count() == 0) GTEST_FAIL() << "no CUDA device";
  }
};

TEST_F(CudaBackend, PackedFolderPerplexityMatchesCpu) {
  testing::TempFolder folder("cuda_backend");
  const testing::SyntheticSource synthetic(testing::packed_test_spec(5));
  testing::write_packed_test_model(synthetic, folder.path());
  const PackedModelSource packed(folder.path());
  const std::vector<int32_t> tokens = random_tokens(6 * 48 + 3, 7);
  PerplexityOptions options;
  options.seq_len = 48;
  options.micro_batch_tokens = 96;  // two windows per layer call: the micro-batch loop runs
  options.layer_loader = [&packed](int64_t i) { return packed.load_layer(i); };
  const PerplexityResult cpu = perplexity_of_tokens(packed, tokens, "random", options);
  const auto backend = make_cuda_decoder_backend(packed.config(), 0);
  options.backend = backend.get();
  const PerplexityResult gpu = perplexity_of_tokens(packed, tokens, "random", options);
  EXPECT_EQ(gpu.predicted_tokens, cpu.predicted_tokens);
  EXPECT_NEAR(gpu.perplexity, cpu.perplexity, 1e-3 * cpu.perplexity);
}

TEST_F(CudaBackend, DenseModelPerplexityMatchesCpu) {
  const testing::SyntheticSource synthetic(testing::packed_test_spec(6));
  const std::vector<int32_t> tokens = random_tokens(4 * 32, 8);
  PerplexityOptions options;
  options.seq_len = 32;
  const PerplexityResult cpu = perplexity_of_tokens(synthetic, tokens, "random", options);
  const auto backend = make_cuda_decoder_backend(synthetic.config(), 0);
  options.backend = backend.get();
  const PerplexityResult gpu = perplexity_of_tokens(synthetic, tokens, "random", options);
  EXPECT_NEAR(gpu.perplexity, cpu.perplexity, 1e-2 * cpu.perplexity);
}

TEST_F(CudaBackend, DecodeStepsMatchCpu) {
  testing::TempFolder folder("cuda_decode");
  const testing::SyntheticSource synthetic(testing::packed_test_spec(9));
  testing::write_packed_test_model(synthetic, folder.path());
  const PackedModelSource packed(folder.path());
  const Generator generator(packed, [&packed](int64_t i) { return packed.load_layer(i); });
  const ModelConfig& c = packed.config();
  const std::vector<int32_t> ids = random_tokens(12, 10);
  const int64_t prompt = 6;
  const auto cpu = make_cpu_decode_backend(generator.ends(), generator.layers(), 12);
  const auto gpu = make_cuda_decode_backend(generator.ends(), generator.layers(), 12, 0);
  std::vector<float> hidden(static_cast<size_t>(prompt * c.hidden_size));
  std::vector<float> want(static_cast<size_t>(c.vocab_size)), got(want.size());
  for (int64_t at = 0; at < 12; at += at == 0 ? prompt : 1) {
    const int64_t count = at == 0 ? prompt : 1;
    generator.ends().embed(ids.data() + at, count, hidden.data());
    cpu->step(hidden.data(), count, want.data());
    gpu->step(hidden.data(), count, got.data());
    double scale = 0.0, diff = 0.0;
    for (size_t j = 0; j < want.size(); ++j) {
      scale = std::max(scale, std::abs(static_cast<double>(want[j])));
      diff = std::max(diff, std::abs(static_cast<double>(got[j]) - want[j]));
    }
    EXPECT_LE(diff, 1e-2 * scale) << "step at position " << at;
  }
}

TEST_F(CudaBackend, CapturedInputsMatchCpu) {
  testing::TempFolder folder("cuda_capture");
  const testing::SyntheticSource synthetic(testing::packed_test_spec(12));
  testing::write_packed_test_model(synthetic, folder.path());
  const PackedModelSource packed(folder.path());
  const model::DecoderLayer layer = packed.load_layer(0);
  const ModelConfig& c = packed.config();
  const int64_t windows = 3, seq = 20;
  std::vector<float> states(static_cast<size_t>(windows * seq * c.hidden_size));
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : states) v = normal(rng);
  using Captured = std::vector<std::vector<float>>;  // per call, in call order
  const auto run = [&](DecoderBackend& b, std::vector<float> x, Captured& captured) {
    b.load_states(x.data(), windows * seq);
    b.set_layer(layer);
    b.run_layer(windows, seq, 1,
                [&](model::LinearGroup, const float* in, int64_t tokens, int64_t features) {
                  captured.emplace_back(in, in + tokens * features);
                });
    b.store_states(x.data());
    return x;
  };
  Captured want, got;
  const auto cpu_backend = make_cpu_decoder_backend();
  const auto gpu_backend = make_cuda_decoder_backend(c, 0);
  const auto cpu_out = run(*cpu_backend, states, want);
  const auto gpu_out = run(*gpu_backend, states, got);
  ASSERT_EQ(got.size(), want.size());
  ASSERT_EQ(want.size(), static_cast<size_t>(4 * windows));
  const auto close = [](const std::vector<float>& a, const std::vector<float>& b) {
    double scale = 0.0, diff = 0.0;
    for (size_t j = 0; j < b.size(); ++j) {
      scale = std::max(scale, std::abs(static_cast<double>(b[j])));
      diff = std::max(diff, std::abs(static_cast<double>(a[j]) - b[j]));
    }
    return a.size() == b.size() && diff <= 1e-2 * scale;
  };
  for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(close(got[i], want[i])) << "capture " << i;
  EXPECT_TRUE(close(gpu_out, cpu_out));
}

}  // namespace
}  // namespace skim::pipeline
