// quantize's GPU steps (src/pipeline/quant_device_steps.h, and the sensitivity pass's layer
// forwards through the CUDA decoder backend) against the CPU functions they stand in for (label
// gpu): the upload, the kernels and the assembly of the result. Bounds as the kernels' own tests:
// error-table entries within 1e-3 relative on 95% of rows (the K-means may stop at another local
// optimum on a few), gptq codes equal on 95% of weights and the layer error within 2%; each
// linear's measured KL within 5% (the GPU's layers run on fp16 weights, a perturbation far
// smaller than the 2-bit replacement the KL measures), its error (CPU on both) within 1e-9.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "comm/backends.h"
#include "comm/communicator.h"
#include "comm/cuda_devices.h"
#include "kernels/gpu/device_memory.h"
#include "src/core/error.h"
#include "src/pipeline/quant_device_steps.h"
#include "src/pipeline/sensitivity.h"
#include "src/quant/layer_error.h"
#include "src/quant/lut_refinement.h"
#include "src/quant/rtn.h"
#include "src/quant/scale_training.h"
#include "tests/model/synthetic_model.h"

namespace skim::pipeline {
namespace {

Tensor random_weight(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> t(4.0f);
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (float& x : v) x = 0.02f * t(rng);
  return Tensor({rows, cols}, v);
}

// H = X^T X / n for n correlated random samples, plus 1e-3 on the diagonal.
Tensor random_hessian(int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 2 * cols;
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (int64_t s = 0; s < n; ++s) {
    float prev = 0.0f;
    for (int64_t j = 0; j < cols; ++j) {
      prev = 0.6f * prev + normal(rng);
      x[static_cast<size_t>(s * cols + j)] = prev * (1.0f + static_cast<float>(j % 7));
    }
  }
  Tensor h({cols, cols});
  for (int64_t a = 0; a < cols; ++a)
    for (int64_t b = 0; b < cols; ++b) {
      double acc = 0.0;
      for (int64_t s = 0; s < n; ++s)
        acc += static_cast<double>(x[static_cast<size_t>(s * cols + a)]) *
               x[static_cast<size_t>(s * cols + b)];
      h.at(a, b) = static_cast<float>(acc / n + (a == b ? 1e-3 : 0.0));
    }
  return h;
}

class QuantDeviceSteps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (comm::cuda_device_count() == 0) GTEST_FAIL() << "no CUDA device";
  }
};

TEST_F(QuantDeviceSteps, ErrorTableMatchesCpu) {
  const int64_t rows = 96, cols = 256;
  const Tensor w = random_weight(rows, cols, 1);
  const Tensor h = random_hessian(cols, 2);
  std::vector<float> f(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) f[static_cast<size_t>(j)] = h.at(j, j);
  for (const auto entries :
       {quant::LutEntries::kF16, quant::LutEntries::kQ8, quant::LutEntries::kD8}) {
    const quant::ErrorTable cpu =
        quant::build_error_table(w, h, {f.data(), 0}, 2, 6, quant::KMeansSolver::kLloyd, entries);
    const quant::ErrorTable gpu =
        cuda_error_table(0, w, h, {f.data(), 0}, 2, 6, quant::KMeansSolver::kLloyd, entries);
    ASSERT_EQ(gpu.rows, rows);
    ASSERT_EQ(gpu.b_min, 2);
    ASSERT_EQ(gpu.b_max, 6);
    ASSERT_EQ(gpu.e.size(), cpu.e.size());
    int64_t close_rows = 0;
    for (int64_t i = 0; i < rows; ++i) {
      bool close = true;
      for (int b = 2; b <= 6; ++b)
        close = close && std::fabs(gpu.at(i, b) - cpu.at(i, b)) <= 1e-3 * cpu.at(i, b);
      close_rows += close ? 1 : 0;
    }
    EXPECT_GE(close_rows, rows * 95 / 100) << "entries " << static_cast<int>(entries);
  }
}

// The scale objective on the device: loss and gradient within 1e-4 of the CPU's double twin at
// a trained-looking log alpha, and a whole scaled K-means with it (then also with the grouping
// K-means and the refinement's systems on the device) within 1% of the CPU's error.
TEST_F(QuantDeviceSteps, ScaleObjectiveMatchesCpu) {
  const int64_t rows = 96, cols = 256;
  const Tensor w = random_weight(rows, cols, 5);
  const Tensor h = random_hessian(cols, 6);
  std::vector<float> f(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) f[static_cast<size_t>(j)] = h.at(j, j);
  std::vector<uint8_t> labels(static_cast<size_t>(rows * cols));
  std::vector<int> k(static_cast<size_t>(rows));
  std::mt19937 rng(7);
  for (int64_t i = 0; i < rows; ++i) {
    k[static_cast<size_t>(i)] = 1 << (1 + i % 4);
    for (int64_t j = 0; j < cols; ++j)
      labels[static_cast<size_t>(i * cols + j)] = static_cast<uint8_t>(rng() % k[i]);
  }
  std::vector<double> theta(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) theta[static_cast<size_t>(j)] = 0.3 * std::sin(0.1 * j);
  const quant::ScaleProblem<float> p{rows,          cols,          w.data(), h.data(),
                                     {f.data(), 0}, labels.data(), k.data()};
  std::vector<double> wd(w.data(), w.data() + w.numel()), hd(h.data(), h.data() + h.numel());
  const quant::ScaleProblem<double> pd{rows,          cols,          wd.data(), hd.data(),
                                       {f.data(), 0}, labels.data(), k.data()};
  std::vector<double> g_gpu, g_cpu;
  const double l_gpu = cuda_scale_objective(0, p)(theta, &g_gpu);
  const double l_cpu = quant::scale_loss_and_grad(pd, theta, &g_cpu);
  EXPECT_NEAR(l_gpu, l_cpu, 1e-4 * l_cpu);
  ASSERT_EQ(g_gpu.size(), g_cpu.size());
  double g_max = 0.0;
  for (const double g : g_cpu) g_max = std::max(g_max, std::fabs(g));
  for (size_t j = 0; j < g_cpu.size(); ++j) EXPECT_NEAR(g_gpu[j], g_cpu[j], 1e-4 * g_max) << j;

  const std::vector<uint8_t> bits(static_cast<size_t>(rows), 3);
  quant::ScaleTrainingOptions opt;
  quant::ScaleTrainingReport cpu, gpu;
  (void)quant::scaled_kmeans(w, h, {f.data(), 0}, bits, opt, &cpu);
  opt.objective_maker = [](const quant::ScaleProblem<float>& q) {
    return cuda_scale_objective(0, q);
  };
  (void)quant::scaled_kmeans(w, h, {f.data(), 0}, bits, opt, &gpu);
  EXPECT_NEAR(gpu.error_final, cpu.error_final, 0.01 * cpu.error_final);
  // And the grouping K-means on the device as well.
  opt.row_kmeans = [](const Tensor& wt, quant::ImportanceView fv, std::span<const int> k,
                      std::span<const float> alpha, quant::KMeansSolver solver,
                      std::vector<uint8_t>& labels, std::vector<std::vector<double>>& luts) {
    cuda_row_kmeans(0, wt, fv, k, alpha, solver, labels, luts);
  };
  quant::ScaleTrainingReport both;
  (void)quant::scaled_kmeans(w, h, {f.data(), 0}, bits, opt, &both);
  EXPECT_NEAR(both.error_final, cpu.error_final, 0.01 * cpu.error_final);
  // And the refinement's systems too.
  opt.refine_systems = [](const quant::RefineProblem& q) { return cuda_refine_systems(0, q); };
  quant::ScaleTrainingReport all;
  (void)quant::scaled_kmeans(w, h, {f.data(), 0}, bits, opt, &all);
  EXPECT_NEAR(all.error_final, cpu.error_final, 0.01 * cpu.error_final);
}

// Two ranks on one GPU holding the same rows, for device buffers only: all_gatherv copies the
// one buffer twice (what NCCL would gather from twin ranks). Nothing else is called.
class TwinDeviceRanks final : public comm::Communicator {
 public:
  comm::Backend backend() const override { return comm::Backend::kNccl; }
  int rank() const override { return 0; }
  int size() const override { return 2; }
  void all_gatherv_bytes(const void* send, int64_t send_bytes, void* recv,
                         std::span<const int64_t> recv_bytes) override {
    check_counts(send_bytes, recv_bytes, "all_gatherv");
    for (int r = 0; r < 2; ++r)
      kernels::gpu::copy_on_device(static_cast<char*>(recv) + r * send_bytes, send,
                                   static_cast<size_t>(send_bytes), nullptr);
    kernels::gpu::stream_synchronize(nullptr);
  }
  void all_reduce_sum(float*, int64_t) override { unused(); }
  void all_reduce_sum(double*, int64_t) override { unused(); }
  void all_reduce_sum(int64_t*, int64_t) override { unused(); }
  void reduce_sum(float*, int64_t, int) override { unused(); }
  void reduce_sum(double*, int64_t, int) override { unused(); }
  void reduce_sum(int64_t*, int64_t, int) override { unused(); }
  void broadcast_bytes(void*, int64_t, int) override { unused(); }
  void gatherv_bytes(const void*, int64_t, void*, std::span<const int64_t>, int) override {
    unused();
  }
  void send_bytes(const void*, int64_t, int) override { unused(); }
  void recv_bytes(void*, int64_t, int) override { unused(); }
  void barrier() override { unused(); }
  [[noreturn]] void abort(std::string_view, int) override { unused(); }

 private:
  [[noreturn]] static void unused() { fail(ErrorKind::kInternal, "not used by this test"); }
};

// The objective summed over the ranks on the device (gathered, added in rank order): under twin
// ranks exactly twice the one-rank loss and gradient (x + x is exact).
TEST_F(QuantDeviceSteps, ScaleObjectiveSumsTheRanksOnTheDevice) {
  const int64_t rows = 40, cols = 200;
  const Tensor w = random_weight(rows, cols, 15);
  const Tensor h = random_hessian(cols, 16);
  std::vector<float> f(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) f[static_cast<size_t>(j)] = h.at(j, j);
  std::vector<uint8_t> labels(static_cast<size_t>(rows * cols));
  std::vector<int> k(static_cast<size_t>(rows), 8);
  std::mt19937 rng(17);
  for (uint8_t& l : labels) l = static_cast<uint8_t>(rng() % 8);
  const quant::ScaleProblem<float> p{rows,          cols,          w.data(), h.data(),
                                     {f.data(), 0}, labels.data(), k.data()};
  std::vector<double> theta(static_cast<size_t>(cols), 0.1), g_one, g_two;
  TwinDeviceRanks twins;
  const double one = cuda_scale_objective(0, p)(theta, &g_one);
  const double two = cuda_scale_objective(0, p, &twins)(theta, &g_two);
  EXPECT_EQ(two, 2.0 * one);
  ASSERT_EQ(g_two.size(), g_one.size());
  for (size_t j = 0; j < g_one.size(); ++j) EXPECT_EQ(g_two[j], 2.0 * g_one[j]) << j;
}

// The refinement's normal equations of a block in the middle of a layer (LUT sizes 2..256, a
// column count that is no multiple of 32, lines at padded offsets): every entry within 1e-4 of
// its row's largest magnitude of the CPU's (only the fp32 GEMM P H rounds differently).
TEST_F(QuantDeviceSteps, RefineSystemsMatchCpu) {
  const int64_t rows = 72, cols = 300;
  const Tensor w = random_weight(rows, cols, 11);
  const Tensor h = random_hessian(cols, 12);
  std::mt19937 rng(13);
  std::vector<float> alpha(static_cast<size_t>(cols));
  for (float& a : alpha) a = 0.5f + static_cast<float>(rng() % 1000) / 1000.0f;
  std::vector<int> k(static_cast<size_t>(rows));
  std::vector<uint8_t> labels(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i) {
    k[static_cast<size_t>(i)] = i % 9 == 4 ? 256 : 2 << (i % 4);
    for (int64_t j = 0; j < cols; ++j)
      labels[static_cast<size_t>(i * cols + j)] = static_cast<uint8_t>(rng() % k[i]);
  }
  const quant::RefineProblem p{w, h, labels, alpha, k};
  const int64_t first = 16, count = 40;
  std::vector<int64_t> line_off{0}, a_off{0}, rhs_off{0};
  for (int64_t r = 0; r < count; ++r) {
    const int64_t kr = k[static_cast<size_t>(first + r)];
    line_off.push_back(line_off.back() + kr + r % 3);
    a_off.push_back(a_off.back() + kr * kr);
    rhs_off.push_back(rhs_off.back() + kr);
  }
  const quant::RefineBlock block{first, count, line_off, a_off, rhs_off};
  std::vector<double> a_cpu, rhs_cpu, a_gpu, rhs_gpu;
  quant::cpu_refine_systems(p)(block, a_cpu, rhs_cpu);
  cuda_refine_systems(0, p)(block, a_gpu, rhs_gpu);
  ASSERT_EQ(a_gpu.size(), a_cpu.size());
  ASSERT_EQ(rhs_gpu.size(), rhs_cpu.size());
  for (int64_t r = 0; r < count; ++r) {
    double scale = 0.0;
    for (int64_t e = a_off[r]; e < a_off[r + 1]; ++e) scale = std::max(scale, std::fabs(a_cpu[e]));
    for (int64_t e = rhs_off[r]; e < rhs_off[r + 1]; ++e)
      scale = std::max(scale, std::fabs(rhs_cpu[e]));
    for (int64_t e = a_off[r]; e < a_off[r + 1]; ++e)
      EXPECT_NEAR(a_gpu[e], a_cpu[e], 1e-4 * scale) << "row " << first + r;
    for (int64_t e = rhs_off[r]; e < rhs_off[r + 1]; ++e)
      EXPECT_NEAR(rhs_gpu[e], rhs_cpu[e], 1e-4 * scale) << "row " << first + r;
  }
}

// rtn: the same codes, scales and zero points as the CPU, bit for bit, per row and per group
// (a last group shorter than the others, a zero row, a constant row), and the CPU's input
// checks.
TEST_F(QuantDeviceSteps, RtnMatchesCpuBitForBit) {
  const int64_t rows = 100, cols = 300;
  Tensor w = random_weight(rows, cols, 9);
  for (int64_t j = 0; j < cols; ++j) {
    w.at(1, j) = 0.0f;
    w.at(2, j) = -0.125f;
  }
  for (const int bits : {2, 3, 4, 8})
    for (const int64_t group : {int64_t{0}, int64_t{64}, int64_t{128}, int64_t{1000}}) {
      const quant::RtnOptions o{bits, group};
      const quant::UniformLayer cpu = quant::rtn_quantize(w, o);
      const quant::UniformLayer gpu = cuda_rtn_quantize(0, w, o);
      EXPECT_EQ(gpu.group_size, cpu.group_size);
      EXPECT_EQ(gpu.codes, cpu.codes) << bits << " bits, groups of " << group;
      EXPECT_EQ(gpu.scale, cpu.scale) << bits << " bits, groups of " << group;
      EXPECT_EQ(gpu.zero, cpu.zero) << bits << " bits, groups of " << group;
    }
  w.at(5, 7) = std::nanf("");
  try {
    (void)cuda_rtn_quantize(0, w, {4, 0});
    ADD_FAILURE() << "a NaN weight was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  }
}

TEST_F(QuantDeviceSteps, GptqMatchesCpu) {
  const int64_t rows = 64, cols = 256;
  const Tensor w = random_weight(rows, cols, 3);
  const Tensor h = random_hessian(cols, 4);
  const std::pair<int64_t, bool> cases[] = {{0, false}, {128, false}, {128, true}, {0, true}};
  for (const auto& [group, act_order] : cases) {
    quant::GptqOptions g;
    g.bits = 3;
    g.group_size = group;
    g.act_order = act_order;
    const quant::UniformLayer cpu = quant::gptq_quantize(w, h, g);
    const quant::UniformLayer gpu = cuda_gptq_quantize(0, w, h, g);
    ASSERT_EQ(gpu.codes.size(), cpu.codes.size());
    ASSERT_EQ(gpu.scale.size(), cpu.scale.size());
    int64_t same = 0;
    for (size_t t = 0; t < cpu.codes.size(); ++t) same += cpu.codes[t] == gpu.codes[t] ? 1 : 0;
    EXPECT_EQ(gpu.perm, cpu.perm);
    EXPECT_GE(same, static_cast<int64_t>(cpu.codes.size()) * 95 / 100)
        << "group " << group << " act-order " << act_order;
    const double e_cpu = quant::layer_error(w, quant::dequantize(cpu), h);
    const double e_gpu = quant::layer_error(w, quant::dequantize(gpu), h);
    EXPECT_NEAR(e_gpu, e_cpu, 0.02 * e_cpu) << "group " << group << " act-order " << act_order;
  }
}

TEST_F(QuantDeviceSteps, SensitivityMatchesCpu) {
  testing::SyntheticSpec spec;
  spec.layers = 2;
  spec.hidden = 128;
  spec.ffn = 256;
  spec.vocab = 256;
  const testing::SyntheticSource src(spec);
  const ModelConfig& c = src.config();
  std::vector<int32_t> tokens;
  for (int64_t t = 0; t < 2 * 32; ++t) tokens.push_back(static_cast<int32_t>((t * 37 + 5) % 256));
  SensitivityInput in;
  in.tokens = tokens.data();
  in.windows = 2;
  in.seq = 32;
  in.bits = 2;
  in.hessian = [&](int64_t layer, model::LinearGroup g) {
    const int64_t width = g == model::LinearGroup::kO      ? c.num_heads * c.head_dim
                          : g == model::LinearGroup::kDown ? c.intermediate_size
                                                           : c.hidden_size;
    return random_hessian(width, static_cast<uint32_t>(10 * layer + static_cast<int>(g)));
  };
  auto comm = comm::make_local_communicator();
  QuantizeOptions cpu_options, gpu_options;
  gpu_options.device = Device::kCuda;
  gpu_options.cuda_device = 0;
  const auto cpu = measure_sensitivity(*comm, src, in, cpu_options);
  const auto gpu = measure_sensitivity(*comm, src, in, gpu_options);
  ASSERT_EQ(gpu.size(), cpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    EXPECT_NEAR(gpu[i].kl, cpu[i].kl, 0.05 * cpu[i].kl) << "linear " << i;
    EXPECT_NEAR(gpu[i].error, cpu[i].error, 1e-9 * cpu[i].error) << "linear " << i;
  }
}

}  // namespace
}  // namespace skim::pipeline
