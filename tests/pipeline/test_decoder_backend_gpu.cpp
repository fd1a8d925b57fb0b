// Eval and generate through the CUDA backends against the CPU backends (label gpu): a packed
// folder (K-means LUT linears run by the LUT kernels, RTN linears dequantized to fp16) and the
// dense synthetic model (fp16 weights through cuBLAS). Bounds: the packed perplexity agrees to
// 0.1% (the bound eval promises); the dense fp16 weights and fp16-rounded GEMM inputs differ from
// the CPU's fp32 by about 2^-11 relative per product, so the dense model gets 1%; the decode
// steps' logits (the prompt, then one token at a time against the KV cache) agree within 1% of
// their largest magnitude.
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

}  // namespace
}  // namespace skim::pipeline
