// Every GPU quantization kernel against its CPU twin in src/quant on the same inputs.
// Tolerances: Hessian 1e-5 relative (fp32 SYRK, fp64 sums); K-means objective within 0.1% of
// the CPU Lloyd result and never below the exact optimum; the exact solver within 1e-9 of the
// CPU exact DP; error tables 0.1% per entry for 95% of rows and the same greedy allocation for
// 95% of rows; scale loss 1e-5 and gradient 1e-4 of its norm against the fp64 twin; GPTQ
// identical per-row quantizers, 95% identical codes and the layer error within 2%; packing
// byte-identical.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/gpu/device_memory.h"
#include "kernels/gpu/quant_kernels.h"
#include "src/core/error.h"
#include "src/core/tensor.h"
#include "src/quant/allocation.h"
#include "src/quant/error_table.h"
#include "src/quant/gptq.h"
#include "src/quant/hessian.h"
#include "src/quant/kmeans1d.h"
#include "src/quant/layer_error.h"
#include "src/quant/lut_layer.h"
#include "src/quant/packed_layer.h"
#include "src/quant/scale_training.h"

namespace skim::kernels::gpu {
namespace {

using quant::KMeansSolver;

class QuantKernelsGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (device_count() == 0) GTEST_FAIL() << "no CUDA device";
  }
};

// Heavy-tailed weights (Student-t like) as in real layers.
std::vector<float> heavy_tailed(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> t(4.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = 0.02f * t(rng);
  return v;
}

std::vector<float> positive(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::gamma_distribution<float> g(1.5f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = g(rng);
  return v;
}

// A damped SPD Hessian from random activations with a few dominant columns.
Tensor random_hessian(int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  const int64_t tokens = 2 * cols;
  std::vector<float> x(static_cast<size_t>(tokens * cols));
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < cols; ++j) x[t * cols + j] = nd(rng) * (j % 17 == 0 ? 5.0f : 1.0f);
  quant::HessianAccumulator acc(cols);
  acc.add(x.data(), tokens);
  Tensor h = acc.mean();
  quant::damp_hessian(h);
  return h;
}

std::vector<float> diagonal(const Tensor& h) {
  const int64_t n = h.dim(0);
  std::vector<float> d(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) d[j] = h.at(j, j);
  return d;
}

TEST_F(QuantKernelsGpu, HessianMatchesCpuAccumulator) {
  const int64_t cols = 96;
  const std::vector<int64_t> batches = {130, 77};
  quant::HessianAccumulator cpu(cols);
  DeviceArray<double> sum(std::vector<double>(cols * cols, 0.0));
  DeviceArray<float> scratch(static_cast<size_t>(cols * cols));
  uint32_t seed = 1;
  for (const int64_t tokens : batches) {
    const std::vector<float> x = heavy_tailed(tokens * cols, seed++);
    cpu.add(x.data(), tokens);
    DeviceArray<float> dx(x);
    hessian_accumulate(dx.data(), tokens, cols, sum.data(), scratch.data(), nullptr);
  }
  const std::vector<double> got = sum.to_host();
  double scale = 0.0;
  for (const double v : cpu.sum()) scale = std::max(scale, std::fabs(v));
  for (size_t t = 0; t < got.size(); ++t) ASSERT_NEAR(got[t], cpu.sum()[t], 1e-5 * scale) << t;

  DeviceArray<float> h(static_cast<size_t>(cols * cols));
  hessian_mean(sum.data(), cpu.tokens(), cols, h.data(), nullptr);
  const std::vector<float> hm = h.to_host();
  const Tensor ref = cpu.mean();
  for (size_t t = 0; t < hm.size(); ++t)
    ASSERT_NEAR(hm[t], ref.data()[t], 1e-5 * scale / cpu.tokens()) << t;
}

struct KMeansCase {
  int64_t rows, cols;
  std::vector<int> ks;
};

// Runs the GPU K-means at every k and checks each row against the CPU twin.
void check_kmeans(const KMeansCase& c, bool shared_f, const std::vector<float>* alpha) {
  const int64_t rows = c.rows, cols = c.cols;
  std::vector<float> w = heavy_tailed(rows * cols, 11);
  std::vector<float> f = positive(shared_f ? cols : rows * cols, 12);
  if (!shared_f)  // one row with no weight at all: the uniform fallback
    std::fill(f.begin() + cols, f.begin() + 2 * cols, 0.0f);
  for (int64_t j = 0; j < cols; j += 7) w[j] = w[j + 1];  // ties
  DeviceArray<float> dw(w), df(f);
  std::unique_ptr<DeviceArray<float>> dalpha;
  if (alpha) dalpha = std::make_unique<DeviceArray<float>>(*alpha);
  const int levels = static_cast<int>(c.ks.size());
  std::vector<DeviceArray<float>> cent;
  std::vector<DeviceArray<uint8_t>> lab;
  std::vector<DeviceArray<double>> obj;
  std::vector<KMeansLevelOut> outs;
  for (const int k : c.ks) {
    cent.emplace_back(static_cast<size_t>(rows * k));
    lab.emplace_back(static_cast<size_t>(rows * cols));
    obj.emplace_back(static_cast<size_t>(rows));
    outs.push_back({cent.back().data(), k, lab.back().data(), obj.back().data()});
  }
  kmeans_rows(dw.data(), RowWeights{df.data(), shared_f ? 0 : cols},
              dalpha ? dalpha->data() : nullptr, rows, cols, c.ks.data(), levels,
              KMeansMode::kLloyd, outs.data(), nullptr);
  for (int l = 0; l < levels; ++l) {
    const int k = c.ks[l];
    const auto centroids = cent[l].to_host();
    const auto labels = lab[l].to_host();
    const auto objective = obj[l].to_host();
    for (int64_t i = 0; i < rows; ++i) {
      std::vector<float> u(cols), g(cols);
      for (int64_t j = 0; j < cols; ++j) {
        const float a = alpha ? (*alpha)[j] : 1.0f;
        u[j] = a * w[i * cols + j];
        g[j] = f[(shared_f ? 0 : i * cols) + j] / (a * a);
      }
      const auto cpu = quant::kmeans1d(u, g, k, KMeansSolver::kLloyd);
      const auto exact = quant::kmeans1d(u, g, k, KMeansSolver::kExact);
      const std::span<const float> ci(centroids.data() + i * k, k);
      const std::span<const uint8_t> li(labels.data() + i * cols, cols);
      // The reported objective is the objective of the returned centroids and labels.
      const double recomputed = quant::kmeans1d_objective(u, g, ci, li);
      ASSERT_NEAR(objective[i], recomputed, 1e-9 * recomputed + 1e-30) << "row " << i;
      ASSERT_LE(objective[i], cpu.objective * 1.001 + 1e-30) << "row " << i << " k " << k;
      ASSERT_GE(objective[i], exact.objective * (1 - 1e-9) - 1e-30) << "row " << i << " k " << k;
      for (int q = 1; q < k; ++q) ASSERT_LE(ci[q - 1], ci[q]) << "row " << i;
    }
  }
}

TEST_F(QuantKernelsGpu, KMeansLloydShortRowsMatchCpu) {
  check_kmeans({20, 200, {2, 4, 8, 16}}, false, nullptr);
}

TEST_F(QuantKernelsGpu, KMeansLloydCoarseGridMatchesCpu) {
  check_kmeans({24, 3000, {2, 4, 8, 16}}, false, nullptr);
  check_kmeans({8, 1000, {4, 256}}, true, nullptr);
}

TEST_F(QuantKernelsGpu, KMeansScaledRowsMatchCpu) {
  std::vector<float> alpha = positive(1500, 5);
  for (auto& a : alpha) a = 0.5f + 0.5f * a;
  check_kmeans({12, 1500, {4, 16}}, true, &alpha);
}

TEST_F(QuantKernelsGpu, KMeansExactMatchesCpuExactDp) {
  const int64_t rows = 6, cols = 300;
  const std::vector<float> w = heavy_tailed(rows * cols, 21);
  const std::vector<float> f = positive(rows * cols, 22);
  DeviceArray<float> dw(w), df(f);
  for (const int k : {2, 4, 8}) {
    DeviceArray<double> obj(static_cast<size_t>(rows));
    KMeansLevelOut out{nullptr, 0, nullptr, obj.data()};
    kmeans_rows(dw.data(), RowWeights{df.data(), cols}, nullptr, rows, cols, &k, 1,
                KMeansMode::kExact, &out, nullptr);
    const auto got = obj.to_host();
    for (int64_t i = 0; i < rows; ++i) {
      const auto ref = quant::kmeans1d(std::span<const float>(w.data() + i * cols, cols),
                                       std::span<const float>(f.data() + i * cols, cols), k,
                                       KMeansSolver::kExactNaive);
      ASSERT_NEAR(got[i], ref.objective, 1e-9 * ref.objective) << "row " << i << " k " << k;
    }
  }
}

TEST_F(QuantKernelsGpu, KMeansVaryingKMatchesCpu) {
  const int64_t rows = 16, cols = 700;
  const std::vector<float> w = heavy_tailed(rows * cols, 31);
  const std::vector<float> f = positive(cols, 32);
  std::vector<int> k(rows);
  for (int64_t i = 0; i < rows; ++i) k[i] = 1 << (1 + i % 4);
  DeviceArray<float> dw(w), df(f), cent(static_cast<size_t>(rows * 16));
  DeviceArray<int> dk(k);
  DeviceArray<double> obj(static_cast<size_t>(rows));
  kmeans_rows_varying_k(dw.data(), RowWeights{df.data(), 0}, nullptr, rows, cols, dk.data(), 16,
                        KMeansMode::kLloyd, KMeansLevelOut{cent.data(), 16, nullptr, obj.data()},
                        nullptr);
  const auto got = obj.to_host();
  for (int64_t i = 0; i < rows; ++i) {
    const auto ref = quant::kmeans1d(std::span<const float>(w.data() + i * cols, cols), f, k[i]);
    ASSERT_LE(got[i], ref.objective * 1.001) << "row " << i;
    ASSERT_GE(got[i], ref.objective * 0.999) << "row " << i;
  }
}

// Stored LUT entries: bit for bit the twin's, on ascending heavy-tailed rows, a constant row,
// tiny (subnormal fp16) entries and every k the table uses.
TEST_F(QuantKernelsGpu, StoredLutEntriesMatchCpuBitForBit) {
  for (const int k : {2, 16, 64, 256}) {
    const int64_t rows = 40;
    std::vector<float> c = heavy_tailed(rows * k, 70 + static_cast<uint32_t>(k));
    for (int64_t i = 0; i < rows; ++i) {
      float* r = c.data() + i * k;
      if (i == 1) std::fill(r, r + k, 0.25f);
      if (i == 2)
        for (int q = 0; q < k; ++q) r[q] *= 1e-5f;
      std::sort(r, r + k);
    }
    for (const auto& [storage, entries] : {std::pair{LutStorage::kF16, quant::LutEntries::kF16},
                                           std::pair{LutStorage::kQ8, quant::LutEntries::kQ8},
                                           std::pair{LutStorage::kD8, quant::LutEntries::kD8}}) {
      DeviceArray<float> dc(c);
      store_lut_entries(dc.data(), k, k, rows, storage, nullptr);
      const std::vector<float> got = dc.to_host();
      for (int64_t i = 0; i < rows; ++i) {
        std::vector<float> ref(c.begin() + i * k, c.begin() + (i + 1) * k);
        quant::store_lut_entries(entries, ref);
        for (int q = 0; q < k; ++q)
          ASSERT_EQ(got[static_cast<size_t>(i * k + q)], ref[q])
              << "k " << k << " row " << i << " entry " << q << " storage "
              << static_cast<int>(storage);
      }
    }
  }
}

TEST_F(QuantKernelsGpu, ErrorTableAndAllocationMatchCpu) {
  const int64_t rows = 64, cols = 320;
  const std::vector<float> wv = heavy_tailed(rows * cols, 41);
  const Tensor w({rows, cols}, wv);
  const Tensor h = random_hessian(cols, 42);
  const std::vector<float> f = diagonal(h);
  const quant::ErrorTable cpu = quant::build_error_table(w, h, {f.data(), 0}, 1, 4);
  DeviceArray<float> dw(wv), dh(std::vector<float>(h.data(), h.data() + cols * cols)), df(f);
  DeviceArray<double> de(static_cast<size_t>(rows * 4));
  error_table(dw.data(), dh.data(), RowWeights{df.data(), 0}, rows, cols, 1, 4, KMeansMode::kLloyd,
              LutStorage::kF16, de.data(), nullptr);
  quant::ErrorTable gpu = cpu;
  gpu.e = de.to_host();
  int64_t close_rows = 0;
  for (int64_t i = 0; i < rows; ++i) {
    bool close = true;
    for (int b = 1; b <= 4; ++b)
      close = close && std::fabs(gpu.at(i, b) - cpu.at(i, b)) <= 1e-3 * cpu.at(i, b);
    close_rows += close ? 1 : 0;
  }
  EXPECT_GE(close_rows, rows * 95 / 100);
  const auto a_cpu = quant::allocate_bits(cpu, cols, 2.5, false);
  const auto a_gpu = quant::allocate_bits(gpu, cols, 2.5, false);
  int64_t same = 0;
  for (int64_t i = 0; i < rows; ++i) same += a_cpu.bits[i] == a_gpu.bits[i] ? 1 : 0;
  EXPECT_GE(same, rows * 95 / 100);
  EXPECT_LE(a_gpu.cost_bits, static_cast<int64_t>(2.5 * rows * cols));
}

TEST_F(QuantKernelsGpu, ScaleLossAndGradientMatchDoubleTwin) {
  const int64_t rows = 40, cols = 192;
  const std::vector<float> wv = heavy_tailed(rows * cols, 51);
  const Tensor h = random_hessian(cols, 52);
  const std::vector<float> f = diagonal(h);
  std::vector<int> k(rows);
  std::vector<uint8_t> labels(rows * cols);
  for (int64_t i = 0; i < rows; ++i) {
    k[i] = 1 << (1 + i % 3);
    const auto km = quant::kmeans1d(std::span<const float>(wv.data() + i * cols, cols), f, k[i]);
    std::copy(km.labels.begin(), km.labels.end(), labels.begin() + i * cols);
  }
  std::vector<double> wd(wv.begin(), wv.end()), hd(h.data(), h.data() + cols * cols);
  const quant::ScaleProblem<double> prob{rows,          cols,          wd.data(), hd.data(),
                                         {f.data(), 0}, labels.data(), k.data()};
  std::mt19937 rng(53);
  std::uniform_real_distribution<double> ud(-0.3, 0.3);
  std::vector<double> theta(cols);
  for (auto& t : theta) t = ud(rng);
  std::vector<double> grad_ref;
  const double loss_ref = quant::scale_loss_and_grad(prob, theta, &grad_ref);

  DeviceArray<float> dw(wv), dh(std::vector<float>(h.data(), h.data() + cols * cols)), df(f);
  DeviceArray<uint8_t> dl(labels);
  DeviceArray<int> dk(k);
  DeviceArray<double> dtheta(theta), dloss(1), dgrad(static_cast<size_t>(cols));
  scale_loss_and_grad(dw.data(), dh.data(), RowWeights{df.data(), 0}, dl.data(), dk.data(), 8, rows,
                      cols, dtheta.data(), dloss.data(), dgrad.data(), nullptr);
  EXPECT_NEAR(dloss.to_host()[0], loss_ref, 1e-5 * loss_ref);
  const auto grad = dgrad.to_host();
  double norm = 0.0;
  for (const double g : grad_ref) norm += g * g;
  norm = std::sqrt(norm);
  for (int64_t j = 0; j < cols; ++j) ASSERT_NEAR(grad[j], grad_ref[j], 1e-4 * norm) << j;

  // The Adam loop against the same loop on the host over the fp64 twin.
  const int steps = 12;
  std::vector<double> th(cols, 0.0), m(cols, 0.0), v(cols, 0.0), g;
  for (int step = 0; step < steps; ++step) {
    quant::scale_loss_and_grad(prob, th, &g);
    const double lr = 0.01 * std::pow(0.5, step / 5);
    const double c1 = 1 - std::pow(0.9, step + 1), c2 = 1 - std::pow(0.999, step + 1);
    for (int64_t j = 0; j < cols; ++j) {
      m[j] = 0.9 * m[j] + 0.1 * g[j];
      v[j] = 0.999 * v[j] + 0.001 * g[j] * g[j];
      th[j] -= lr * (m[j] / c1) / (std::sqrt(v[j] / c2) + 1e-8);
    }
  }
  DeviceArray<float> dalpha(static_cast<size_t>(cols));
  const ScaleTrainResult r =
      train_scales(dw.data(), dh.data(), RowWeights{df.data(), 0}, dl.data(), dk.data(), 8, rows,
                   cols, steps, 0.01, 5, 0.5, dalpha.data(), nullptr);
  const double loss_at_one =
      quant::scale_loss_and_grad(prob, std::vector<double>(cols, 0.0), nullptr);
  EXPECT_NEAR(r.loss_first, loss_at_one, 1e-5 * loss_at_one);
  EXPECT_LT(r.loss_last, r.loss_first);
  const auto alpha = dalpha.to_host();
  for (int64_t j = 0; j < cols; ++j)  // fp16 rounding of alpha: 2^-10 relative
    ASSERT_NEAR(alpha[j], std::exp(th[j]), 2e-3 * std::exp(th[j])) << j;
}

void check_gptq(int64_t group_size) {
  const int64_t rows = 48, cols = 384;
  const std::vector<float> wv = heavy_tailed(rows * cols, 61);
  const Tensor w({rows, cols}, wv);
  Tensor h = random_hessian(cols, 62);
  for (int64_t j = 0; j < cols; ++j) {  // one dead column
    h.at(5, j) = 0.0f;
    h.at(j, 5) = 0.0f;
  }
  std::vector<double> hd(h.data(), h.data() + cols * cols);
  quant::GptqOptions opt;
  opt.bits = 3;
  opt.group_size = group_size;
  const quant::UniformLayer cpu = quant::gptq_quantize(w, hd, opt);

  DeviceArray<float> dw(wv);
  DeviceArray<double> dh(hd);
  const int64_t groups = cpu.groups();
  DeviceArray<uint8_t> codes(static_cast<size_t>(rows * cols));
  DeviceArray<uint16_t> scale(static_cast<size_t>(rows * groups)),
      zero(static_cast<size_t>(rows * groups));
  GptqDeviceOptions gopt;
  gopt.bits = 3;
  gopt.group_size = group_size;
  gptq_quantize(dw.data(), dh.data(), rows, cols, gopt, codes.data(), scale.data(), zero.data(),
                nullptr);
  quant::UniformLayer gpu = cpu;
  gpu.codes = codes.to_host();
  gpu.scale = scale.to_host();
  gpu.zero = zero.to_host();
  if (group_size == 0) {
    EXPECT_EQ(gpu.scale, cpu.scale);
    EXPECT_EQ(gpu.zero, cpu.zero);
  }
  int64_t same = 0;
  for (size_t t = 0; t < cpu.codes.size(); ++t) same += cpu.codes[t] == gpu.codes[t] ? 1 : 0;
  EXPECT_GE(same, static_cast<int64_t>(cpu.codes.size()) * 95 / 100);
  Tensor hh = h;
  const double e_cpu = quant::layer_error(w, quant::dequantize(cpu), hh);
  const double e_gpu = quant::layer_error(w, quant::dequantize(gpu), hh);
  EXPECT_NEAR(e_gpu, e_cpu, 0.02 * e_cpu);
}

// Partials of 5 ranks over magnitudes 1e-8..1e8 (where the order changes the bits) summed in rank
// order: bit for bit a host loop ((0 + p_0) + p_1) + ..., the order of comm::ordered_sum.
TEST_F(QuantKernelsGpu, SumInRankOrderIsTheHostLoopBitForBit) {
  const int ranks = 5;
  const int64_t width = 1000;
  std::mt19937 rng(21);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> parts(static_cast<size_t>(ranks * width));
  for (size_t e = 0; e < parts.size(); ++e) parts[e] = u(rng) * std::pow(10.0, (e * 7) % 17 - 8.0);
  const DeviceArray<double> dp(parts);
  DeviceArray<double> dout(static_cast<size_t>(width));
  sum_in_rank_order(dp.data(), ranks, width, dout.data(), nullptr);
  const std::vector<double> got = dout.to_host();
  for (int64_t e = 0; e < width; ++e) {
    double s = 0.0;
    for (int r = 0; r < ranks; ++r) s += parts[static_cast<size_t>(r * width + e)];
    EXPECT_EQ(got[static_cast<size_t>(e)], s) << e;
  }
}

TEST_F(QuantKernelsGpu, GptqPerRowMatchesCpu) {
  check_gptq(0);
}
TEST_F(QuantKernelsGpu, GptqGroupedMatchesCpu) {
  check_gptq(64);
}

TEST_F(QuantKernelsGpu, GptqRejectsIndefiniteHessian) {
  const int64_t rows = 4, cols = 8;
  std::vector<double> h(cols * cols, 0.0);
  for (int64_t j = 0; j < cols; ++j) h[j * cols + j] = 1.0;
  h[1] = h[cols] = 5.0;  // |H_01| > 1: not positive definite even after 1% damping
  DeviceArray<float> dw(heavy_tailed(rows * cols, 71));
  DeviceArray<double> dh(h);
  DeviceArray<uint8_t> codes(rows * cols);
  DeviceArray<uint16_t> scale(rows), zero(rows);
  EXPECT_THROW(gptq_quantize(dw.data(), dh.data(), rows, cols, GptqDeviceOptions{}, codes.data(),
                             scale.data(), zero.data(), nullptr),
               skim::Error);
}

TEST_F(QuantKernelsGpu, PackIndicesMatchesPackRow) {
  const int64_t rows = 16, cols = 1001;
  std::mt19937 rng(81);
  std::vector<uint8_t> bits(rows), values(rows * cols);
  for (int64_t i = 0; i < rows; ++i) bits[i] = static_cast<uint8_t>(1 + i % 8);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      values[i * cols + j] = static_cast<uint8_t>(rng() & ((1u << bits[i]) - 1));
  std::vector<int64_t> off(rows + 1, 0);
  for (int64_t i = 0; i < rows; ++i) off[i + 1] = off[i] + quant::packed_row_bytes(cols, bits[i]);
  std::vector<uint8_t> ref(off[rows], 0);
  for (int64_t i = 0; i < rows; ++i)
    quant::pack_row(values.data() + i * cols, cols, bits[i], ref.data() + off[i]);
  DeviceArray<uint8_t> dv(values), db(bits), dout(std::vector<uint8_t>(off[rows], 0xAB));
  DeviceArray<int64_t> doff(off);
  pack_indices(dv.data(), db.data(), doff.data(), rows, cols, dout.data(), nullptr);
  EXPECT_EQ(dout.to_host(), ref);
}

}  // namespace
}  // namespace skim::kernels::gpu
