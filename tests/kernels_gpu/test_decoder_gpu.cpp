// The decoder layer on the GPU against model::DecoderLayer on the CPU, on a small random layer:
// dense fp16 / bf16 weights through cuBLAS (the CPU side uses the same rounded weights in fp32;
// the GPU also rounds each GEMM input to 16 bits, hence the looser bounds), and packed LUT
// weights (fp32 activations on both sides). Errors are measured against the layer's update
// max |out - in|, for one token (the decode path: GEMV) and for batched sequences (GEMM).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "kernels/gpu/decoder_layer.h"
#include "kernels/gpu/device_memory.h"
#include "src/core/half.h"
#include "src/model/linear.h"
#include "src/model/llama_layer.h"
#include "src/pipeline/packed_linear.h"
#include "src/quant/residual.h"
#include "tests/kernels_gpu/gpu_test_util.h"
#include "tests/kernels_gpu/random_lut_layer.h"

namespace skim::kernels::gpu {
namespace {

using skim::testing::random_floats;

ModelConfig small_config() {
  ModelConfig c;
  c.architecture = "llama";
  c.hidden_size = 128;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 32;
  c.intermediate_size = 352;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-5;
  c.attention_bias = true;
  return c;
}

struct Shape {
  int64_t rows, cols;
};
std::vector<Shape> linear_shapes(const ModelConfig& c) {
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  return {{q, c.hidden_size},
          {kv, c.hidden_size},
          {kv, c.hidden_size},
          {c.hidden_size, q},
          {c.intermediate_size, c.hidden_size},
          {c.intermediate_size, c.hidden_size},
          {c.hidden_size, c.intermediate_size}};
}

float round16(float x, HalfType type) {
  return type == HalfType::kF16 ? half_to_float(float_to_half(x)) : bf16_to_float(float_to_bf16(x));
}

// Runs both layers on the same input and returns max|gpu - cpu| / max|cpu - input|.
double relative_error(const model::DecoderLayer& cpu, GpuDecoderLayer& gpu, int64_t batch,
                      int64_t seq, int64_t hidden) {
  const auto input = random_floats(static_cast<size_t>(batch * seq * hidden), 99);
  std::vector<float> ref = input;
  cpu.forward(ref.data(), batch, seq);
  DeviceArray<float> dh(input);
  gpu.forward(dh.data(), batch, seq, nullptr);
  const auto got = dh.to_host();
  double err = 0.0, update = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err = std::max(err, std::abs(double{got[i]} - ref[i]));
    update = std::max(update, std::abs(double{ref[i]} - input[i]));
  }
  EXPECT_GT(update, 0.1);  // the layer does change its input
  return err / update;
}

class DenseDecoder : public ::testing::TestWithParam<HalfType> {};

TEST_P(DenseDecoder, MatchesCpuLayer) {
  SKIM_REQUIRE_GPU();
  const HalfType type = GetParam();
  const ModelConfig c = small_config();
  std::vector<std::unique_ptr<model::Linear>> cpu_linears;
  std::vector<DeviceLinear> gpu_linears;
  uint32_t seed = 1;
  for (const Shape& s : linear_shapes(c)) {
    auto w = random_floats(static_cast<size_t>(s.rows * s.cols), seed++,
                           1.0f / std::sqrt(static_cast<float>(s.cols)));
    for (float& x : w) x = round16(x, type);
    std::vector<float> bias;
    if (gpu_linears.size() < 3) bias = random_floats(static_cast<size_t>(s.rows), seed++, 0.1f);
    gpu_linears.push_back(DeviceLinear::dense(w.data(), s.rows, s.cols, type, bias));
    Tensor b = bias.empty() ? Tensor() : Tensor({s.rows}, bias);
    cpu_linears.push_back(
        std::make_unique<model::DenseLinear>(Tensor({s.rows, s.cols}, std::move(w)), std::move(b)));
  }
  auto norm1 = random_floats(static_cast<size_t>(c.hidden_size), 50, 0.2f);
  auto norm2 = random_floats(static_cast<size_t>(c.hidden_size), 51, 0.2f);
  for (float& x : norm1) x += 1.0f;
  for (float& x : norm2) x += 1.0f;
  const model::DecoderLayer cpu(c, 0, std::move(cpu_linears), Tensor({c.hidden_size}, norm1),
                                Tensor({c.hidden_size}, norm2));
  GpuDecoderLayer gpu(c, std::move(gpu_linears), norm1, norm2);
  // 16-bit GEMM inputs: fp16 rounds at 2^-11, bf16 at 2^-8, a few roundings deep.
  const double tol = type == HalfType::kF16 ? 1e-2 : 5e-2;
  EXPECT_LE(relative_error(cpu, gpu, 1, 1, c.hidden_size), tol) << "one token";
  EXPECT_LE(relative_error(cpu, gpu, 2, 19, c.hidden_size), tol) << "2 x 19 tokens";
  EXPECT_LE(relative_error(cpu, gpu, 1, 70, c.hidden_size), tol) << "1 x 70 tokens";
}

INSTANTIATE_TEST_SUITE_P(Types, DenseDecoder, ::testing::Values(HalfType::kF16, HalfType::kBF16));

TEST(PackedDecoder, MatchesCpuLayerWithPackedLinears) {
  SKIM_REQUIRE_GPU();
  const ModelConfig c = small_config();
  std::vector<std::unique_ptr<model::Linear>> cpu_linears;
  std::vector<DeviceLinear> gpu_linears;
  uint32_t seed = 60;
  for (const Shape& s : linear_shapes(c)) {
    quant::PackedLutLayer p =
        skim::testing::random_lut_layer(s.rows, s.cols, {1, 2, 3, 4}, true, seed++);
    // LUT entries of a real layer are weights times alpha: keep the product scale ~ 1 / sqrt(n).
    for (uint16_t& e : p.codebook)
      e = float_to_half(half_to_float(e) / std::sqrt(static_cast<float>(s.cols)));
    gpu_linears.push_back(DeviceLinear::lut(p));
    cpu_linears.push_back(std::make_unique<pipeline::PackedLutLinear>(std::move(p)));
  }
  const std::vector<float> norm(static_cast<size_t>(c.hidden_size), 1.0f);
  const model::DecoderLayer cpu(c, 0, std::move(cpu_linears), Tensor({c.hidden_size}, norm),
                                Tensor({c.hidden_size}, norm));
  GpuDecoderLayer gpu(c, std::move(gpu_linears), norm, norm);
  // fp32 everywhere: only summation order and exp() differ.
  EXPECT_LE(relative_error(cpu, gpu, 1, 1, c.hidden_size), 1e-4) << "one token";
  EXPECT_LE(relative_error(cpu, gpu, 3, 17, c.hidden_size), 1e-4) << "3 x 17 tokens";
}

// A QDEC-corrected packed linear (eval / generate --qdec): the product plus the residual's
// correction of the k largest inputs per token, against the CPU's QdecLinear within 1e-5 of the
// largest output; the correction is applied (the outputs move by far more than that).
TEST(DeviceLinearResidual, MatchesCpuQdecLinear) {
  SKIM_REQUIRE_GPU();
  const int64_t rows = 70, cols = 300, tokens = 5, k = 16;
  const quant::PackedLutLayer p =
      skim::testing::random_lut_layer(rows, cols, {2, 3, 4, 6}, true, 81);
  const auto r = random_floats(static_cast<size_t>(rows * cols), 82);
  quant::ResidualLayer residual = quant::quantize_residual(Tensor({rows, cols}, r));
  std::vector<float> scale;
  for (const uint16_t h : residual.scale) scale.push_back(half_to_float(h));
  DeviceLinear plain = DeviceLinear::lut(p);
  DeviceLinear corrected = DeviceLinear::lut(p);
  corrected.add_residual(residual.codes.data(), scale, k);
  const pipeline::QdecLinear cpu(std::make_unique<pipeline::PackedLutLinear>(p),
                                 std::move(residual), k);

  const auto x = random_floats(static_cast<size_t>(tokens * cols), 83);
  std::vector<float> ref(static_cast<size_t>(tokens * rows));
  cpu.forward(x.data(), tokens, ref.data());
  DeviceArray<float> dx(x), dy(ref.size()), dp(ref.size());
  DeviceArray<uint16_t> scratch;
  corrected.forward(dx.data(), tokens, dy.data(), scratch, nullptr);
  plain.forward(dx.data(), tokens, dp.data(), scratch, nullptr);
  const auto got = dy.to_host(), uncorrected = dp.to_host();
  double top = 0.0, err = 0.0, moved = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    top = std::max(top, std::abs(double{ref[i]}));
    err = std::max(err, std::abs(double{got[i]} - ref[i]));
    moved = std::max(moved, std::abs(double{got[i]} - uncorrected[i]));
  }
  EXPECT_LE(err, 1e-5 * top);
  EXPECT_GE(moved, 1e-3 * top);
}

}  // namespace
}  // namespace skim::kernels::gpu
