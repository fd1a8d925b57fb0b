// Eval and generate through the CUDA backends against the CPU backends (label gpu): a packed
// folder (K-means LUT linears run by the LUT kernels, RTN linears dequantized to fp16) and the
// dense synthetic model (fp16 weights through cuBLAS). Bounds: the packed perplexity agrees to
// 0.1% (the bound eval promises); the dense fp16 weights and fp16-rounded GEMM inputs differ from
// the CPU's fp32 by about 2^-11 relative per product, so the dense model gets 1%; the decode
// steps' logits (the prompt, then one token at a time against the KV cache) agree within 1% of
// their largest magnitude, and so do the linear-group inputs a layer captures (quantize's
// calibration forward) and the states after it. quantize's fixed-point Hessians on the device:
// bounds and H against the same backend's captured inputs in double (tight), and the CPU's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "comm/backends.h"
#include "comm/cuda_devices.h"
#include "src/core/error.h"
#include "src/model/llama_model.h"
#include "src/pipeline/decoder_backend.h"
#include "src/pipeline/exact_hessian.h"
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

// The device embedding is the CPU's bit for bit (a row copy of the same fp32 table), and a token
// outside the vocabulary is refused before any lookup.
TEST_F(CudaBackend, EmbeddedStatesAreTheCpuRows) {
  const testing::SyntheticSource synthetic(testing::packed_test_spec(5));
  const auto ends = model::LlamaModel::load(synthetic, model::LlamaModel::Layers::kStream);
  std::vector<int32_t> tokens = random_tokens(37, 11);
  const auto n = static_cast<size_t>(37 * ends.config().hidden_size);
  std::vector<float> want(n), got(n, -1.0f);
  ends.embed(tokens.data(), 37, want.data());
  const auto gpu = make_cuda_decoder_backend(ends.config(), 0);
  gpu->embed_states(ends, tokens.data(), 37);
  gpu->store_states(got.data());
  EXPECT_EQ(got, want);
  tokens[20] = static_cast<int32_t>(ends.config().vocab_size);
  try {
    gpu->embed_states(ends, tokens.data(), 37);
    ADD_FAILURE() << "a token outside the vocabulary was embedded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  }
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
  std::vector<float> want(static_cast<size_t>(c.vocab_size)), got(want.size());
  for (int64_t at = 0; at < 12; at += at == 0 ? prompt : 1) {
    const int64_t count = at == 0 ? prompt : 1;
    cpu->step(ids.data() + at, count, want.data());
    gpu->step(ids.data() + at, count, got.data());
    double scale = 0.0, diff = 0.0;
    for (size_t j = 0; j < want.size(); ++j) {
      scale = std::max(scale, std::abs(static_cast<double>(want[j])));
      diff = std::max(diff, std::abs(static_cast<double>(got[j]) - want[j]));
    }
    EXPECT_LE(diff, 1e-2 * scale) << "step at position " << at;
  }
}

// Layer 0 of the dense synthetic model, and random states of `windows` windows of `seq` tokens.
struct OneLayer {
  testing::TempFolder folder{"cuda_layer"};
  testing::SyntheticSource synthetic{testing::packed_test_spec(12)};
  std::unique_ptr<PackedModelSource> packed;
  std::unique_ptr<model::DecoderLayer> layer;
  std::vector<float> states;

  OneLayer(int64_t windows, int64_t seq, uint32_t seed) {
    testing::write_packed_test_model(synthetic, folder.path());
    packed = std::make_unique<PackedModelSource>(folder.path());
    layer = std::make_unique<model::DecoderLayer>(packed->load_layer(0));
    states.resize(static_cast<size_t>(windows * seq * packed->config().hidden_size));
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& v : states) v = normal(rng);
  }
};

TEST_F(CudaBackend, CapturedInputsMatchCpu) {
  const int64_t windows = 3, seq = 20;
  const OneLayer one(windows, seq, 13);
  const model::DecoderLayer& layer = *one.layer;
  const ModelConfig& c = one.packed->config();
  const std::vector<float>& states = one.states;
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

TEST_F(CudaBackend, FixedPointHessiansStayOnTheDeviceAndMatchTheirInputs) {
  // quantize's Hessians on the GPU (window_bounds, window_hessians): against the same backend's
  // captured inputs brought to the host, each bound equals sample_bound of those inputs (1e-12
  // relative: double sums in another order) and each H equals X^T X / N in double within 1e-5 of
  // its largest entry (fp32 SSYRK per window, then exact integer sums); the states advance as in
  // run_layer. Against the CPU backend: within 2% (the captured inputs agree within 1%).
  const int64_t windows = 3, seq = 20;
  const OneLayer one(windows, seq, 17);
  const model::DecoderLayer& layer = *one.layer;
  const ModelConfig& c = one.packed->config();
  const std::vector<float>& states = one.states;
  std::vector<int64_t> widths;
  for (int g = 0; g < model::kLinearGroupCount; ++g)
    widths.push_back(g == 0 || g == 2 ? c.hidden_size
                     : g == 1         ? c.num_heads * c.head_dim
                                      : c.intermediate_size);
  const auto comm = comm::make_local_communicator();

  const auto gpu = make_cuda_decoder_backend(c, 0);
  gpu->set_layer(layer);
  std::vector<std::vector<double>> xtx(model::kLinearGroupCount);
  std::vector<double> want_bound(model::kLinearGroupCount, 0.0);
  std::vector<float> run_out = states;
  gpu->load_states(run_out.data(), windows * seq);
  gpu->run_layer(windows, seq, 1,
                 [&](model::LinearGroup g, const float* x, int64_t tokens, int64_t cols) {
                   const auto k = static_cast<size_t>(g);
                   ASSERT_EQ(cols, widths[k]);
                   want_bound[k] = std::max(want_bound[k], sample_bound(x, tokens, cols));
                   xtx[k].resize(static_cast<size_t>(cols * cols), 0.0);
                   for (int64_t t = 0; t < tokens; ++t)
                     for (int64_t a = 0; a < cols; ++a)
                       for (int64_t b = 0; b < cols; ++b)
                         xtx[k][a * cols + b] += double{x[t * cols + a]} * x[t * cols + b];
                 });
  gpu->store_states(run_out.data());

  const auto hessians = [&](DecoderBackend& b, std::vector<float>& x, std::vector<double>& bound) {
    b.load_states(x.data(), windows * seq);
    b.set_layer(layer);
    bound = b.window_bounds(windows, seq);
    auto h = b.window_hessians(windows, seq, widths, bound, windows, *comm);
    b.store_states(x.data());
    return h;
  };
  std::vector<float> gpu_out = states, cpu_out = states;
  std::vector<double> gpu_bound, cpu_bound;
  const std::vector<Tensor> got = hessians(*gpu, gpu_out, gpu_bound);
  const auto cpu = make_cpu_decoder_backend();
  const std::vector<Tensor> cpu_h = hessians(*cpu, cpu_out, cpu_bound);
  ASSERT_EQ(got.size(), widths.size());
  EXPECT_EQ(gpu_out, run_out);  // the same kernels: the same states as run_layer
  for (size_t g = 0; g < widths.size(); ++g) {
    EXPECT_NEAR(gpu_bound[g], want_bound[g], 1e-12 * want_bound[g]) << "group " << g;
    EXPECT_NEAR(gpu_bound[g], cpu_bound[g], 2e-2 * cpu_bound[g]) << "group " << g;
    double scale = 0.0, diff = 0.0, cpu_diff = 0.0;
    const double n = static_cast<double>(windows * seq);
    for (size_t i = 0; i < xtx[g].size(); ++i) scale = std::max(scale, std::abs(xtx[g][i] / n));
    for (size_t i = 0; i < xtx[g].size(); ++i) {
      diff = std::max(diff, std::abs(double{got[g].data()[i]} - xtx[g][i] / n));
      cpu_diff = std::max(cpu_diff, std::abs(double{got[g].data()[i]} - cpu_h[g].data()[i]));
    }
    EXPECT_LE(diff, 1e-5 * scale) << "group " << g;
    EXPECT_LE(cpu_diff, 2e-2 * scale) << "group " << g;
  }
}

}  // namespace
}  // namespace skim::pipeline
