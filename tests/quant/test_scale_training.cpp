// The trainable scale: analytic gradient against central finite differences, training lowers
// the full-Hessian error, and the refinement improves on the weighted means.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <span>
#include <vector>

#include "src/core/half.h"
#include "src/quant/hessian.h"
#include "src/quant/kmeans1d.h"
#include "src/quant/layer_error.h"
#include "src/quant/lut_layer.h"
#include "src/quant/scale_training.h"
#include "tests/quant/damped_hessian.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

using testing::SyntheticRng;

using testing::damped_hessian;

// A layer whose input columns have very unequal weight scales (what alpha can fix).
testing::SyntheticLayer uneven_columns_layer(int64_t rows, int64_t cols, uint64_t seed) {
  auto L = testing::make_synthetic_layer(rows, cols, seed);
  SyntheticRng rng(seed + 99);
  std::vector<double> s(cols);
  for (auto& x : s) x = std::exp(1.0 * rng.normal());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) L.w[i * cols + j] *= static_cast<float>(s[j]);
  return L;
}

// An uneven-columns layer as a tensor, its damped Hessian and the default K-means weights H_jj.
struct UnevenProblem {
  Tensor w, h;
  std::vector<float> f;
};
UnevenProblem uneven_problem(int64_t rows, int64_t cols, uint64_t seed) {
  const auto L = uneven_columns_layer(rows, cols, seed);
  UnevenProblem p{Tensor({L.rows, L.cols}, L.w), damped_hessian(L), {}};
  for (int64_t j = 0; j < L.cols; ++j) p.f.push_back(p.h.at(j, j));
  return p;
}

TEST(ScaleTraining, GradientMatchesCentralDifferences) {
  const auto L = uneven_columns_layer(6, 40, 51);
  const Tensor h = damped_hessian(L);
  std::vector<double> wd(L.w.begin(), L.w.end());
  std::vector<double> hd(h.values().begin(), h.values().end());
  std::vector<float> f(L.cols);
  for (int64_t j = 0; j < L.cols; ++j) f[j] = h.at(j, j);
  SyntheticRng rng(52);
  std::vector<double> theta(L.cols);
  for (auto& t : theta) t = 0.3 * rng.normal();
  // Labels from K-means of the scaled rows, K = 2, 4, 8 over the rows.
  std::vector<uint8_t> labels(L.rows * L.cols);
  std::vector<int> k(L.rows);
  for (int64_t i = 0; i < L.rows; ++i) {
    k[i] = 2 << (i % 3);
    std::vector<float> u(L.cols), g(L.cols);
    for (int64_t j = 0; j < L.cols; ++j) {
      const double a = std::exp(theta[j]);
      u[j] = static_cast<float>(a * L.w[i * L.cols + j]);
      g[j] = static_cast<float>(f[j] / (a * a));
    }
    const auto km = kmeans1d(u, g, k[i]);
    std::copy(km.labels.begin(), km.labels.end(), labels.begin() + i * L.cols);
  }
  const ScaleProblem<double> p{L.rows,        L.cols,        wd.data(), hd.data(),
                               {f.data(), 0}, labels.data(), k.data()};
  std::vector<double> grad;
  scale_loss_and_grad(p, theta, &grad);
  const double eps = 1e-5;
  std::vector<double> fd(L.cols);
  double fd_max = 0.0;
  for (int64_t j = 0; j < L.cols; ++j) {
    auto tp = theta, tm = theta;
    tp[j] += eps;
    tm[j] -= eps;
    fd[j] = (scale_loss_and_grad<double>(p, tp, nullptr) -
             scale_loss_and_grad<double>(p, tm, nullptr)) /
            (2 * eps);
    fd_max = std::max(fd_max, std::fabs(fd[j]));
  }
  double worst = 0.0;
  for (int64_t j = 0; j < L.cols; ++j) {
    EXPECT_NEAR(grad[j], fd[j], 1e-6 * fd_max) << "column " << j;
    worst = std::max(worst, std::fabs(grad[j] - fd[j]) / fd_max);
  }
  std::printf("gradient vs central differences: worst |diff| / max|fd| = %.2e\n", worst);
  // The fp32 path agrees with the double path.
  std::vector<float> hf(h.values().begin(), h.values().end());
  const ScaleProblem<float> pf{L.rows,        L.cols,        L.w.data(), hf.data(),
                               {f.data(), 0}, labels.data(), k.data()};
  std::vector<double> grad_f;
  scale_loss_and_grad(pf, theta, &grad_f);
  for (int64_t j = 0; j < L.cols; ++j) EXPECT_NEAR(grad_f[j], grad[j], 1e-3 * fd_max);
}

TEST(ScaleTraining, TrainingLowersFullErrorOnUnevenColumns) {
  const auto [w, h, f] = uneven_problem(64, 256, 53);
  const std::vector<uint8_t> bits(w.dim(0), 3);
  ScaleTrainingOptions opt;
  opt.refine_full_hessian = false;
  ScaleTrainingReport rep;
  const LutLayer layer = scaled_kmeans(w, h, {f.data(), 0}, bits, opt, &rep);
  std::printf("alpha = 1: %.5g  trained: %.5g (%.1f%% lower); loss %.5g -> %.5g\n",
              rep.error_unscaled, rep.error_trained,
              100.0 * (1.0 - rep.error_trained / rep.error_unscaled), rep.loss_first,
              rep.loss_last);
  EXPECT_LT(rep.loss_last, rep.loss_first);
  EXPECT_LT(rep.error_trained, rep.error_unscaled);
  EXPECT_FALSE(rep.kept_unscaled);
  // The stored layer is what the report measured.
  ASSERT_EQ(layer.alpha.size(), static_cast<size_t>(w.dim(1)));
  const double e = layer_error(w, dequantize(layer), h);
  EXPECT_NEAR(e, rep.error_final, 1e-5 * e);
  int not_one = 0;
  for (uint16_t a : layer.alpha) not_one += half_to_float(a) != 1.0f;
  EXPECT_GT(not_one, w.dim(1) / 2);
}

// A supplied objective (how the GPU's enters) replaces the CPU's at every Adam step and the
// final loss: wrapping the CPU's own per-rank objective, the layer comes out bit for bit the same.
TEST(ScaleTraining, ObjectiveMakerStandsInForTheCpuObjective) {
  const auto [w, h, f] = uneven_problem(40, 96, 57);
  const std::vector<uint8_t> bits(w.dim(0), 3);
  ScaleTrainingOptions opt;
  const LutLayer plain = scaled_kmeans(w, h, {f.data(), 0}, bits, opt);
  int calls = 0, with_grad = 0;
  opt.objective_maker = [&](const ScaleProblem<float>& p) -> ScaleObjectiveFn {
    return [&, p](std::span<const double> log_alpha, std::vector<double>* grad) {
      ++calls;
      with_grad += grad != nullptr ? 1 : 0;
      return scale_loss_and_grad(p, log_alpha, grad);
    };
  };
  ScaleTrainingReport rep;
  const LutLayer made = scaled_kmeans(w, h, {f.data(), 0}, bits, opt, &rep);
  EXPECT_EQ(calls, opt.steps + 1);
  EXPECT_EQ(with_grad, opt.steps);
  EXPECT_LT(rep.loss_last, rep.loss_first);
  EXPECT_EQ(made.alpha, plain.alpha);
  EXPECT_EQ(made.codebook, plain.codebook);
  EXPECT_EQ(made.labels, plain.labels);
}

// Two ranks holding the same rows: every group sum is twice the one partial.
class TwinRanks final : public RowGroup {
 public:
  explicit TwinRanks(int64_t rows) : RowGroup({0, rows, rows}) {}
  void ordered_sum(const double* partials, int64_t groups, int64_t width, double* out) override {
    for (int64_t e = 0; e < width; ++e) {
      double s = 0.0;
      for (int64_t g = 0; g < groups; ++g) s += partials[g * width + e];
      out[e] = s + s;
    }
  }
  std::vector<double> all_gather(std::span<const double> mine) override {
    std::vector<double> both(mine.begin(), mine.end());
    both.insert(both.end(), mine.begin(), mine.end());
    return both;
  }
};

// An objective that sums over the ranks itself (as the NCCL one does) is not summed again: under
// two twin ranks its loss is the one-process loss when it says so, and twice that when it does not.
TEST(ScaleTraining, ObjectiveThatSumsTheGroupIsNotSummedAgain) {
  const auto [w, h, f] = uneven_problem(24, 64, 58);
  const std::vector<uint8_t> bits(w.dim(0), 3);
  ScaleTrainingOptions opt;
  ScaleTrainingReport alone;
  (void)scaled_kmeans(w, h, {f.data(), 0}, bits, opt, &alone);
  opt.objective_maker = [](const ScaleProblem<float>& p) -> ScaleObjectiveFn {
    return [p](std::span<const double> log_alpha, std::vector<double>* grad) {
      return scale_loss_and_grad(p, log_alpha, grad);
    };
  };
  for (const bool sums : {true, false}) {
    opt.objective_sums_group = sums;
    TwinRanks twins(w.dim(0));
    ScaleTrainingReport rep;
    (void)scaled_kmeans(w, h, {f.data(), 0}, bits, opt, &rep, &twins);
    EXPECT_DOUBLE_EQ(rep.loss_first, (sums ? 1.0 : 2.0) * alone.loss_first) << sums;
  }
}

// A supplied grouping K-means (how the GPU's enters) replaces the CPU's per-row loop in both
// grouping steps; grid rows are still fitted on the CPU. Wrapping kmeans1d itself, the layer
// comes out bit for bit the same, with and without grid rows.
TEST(ScaleTraining, RowKMeansStandsInForTheCpuLoop) {
  const auto [w, h, f] = uneven_problem(30, 80, 59);
  std::vector<uint8_t> bits(w.dim(0));
  for (int64_t i = 0; i < w.dim(0); ++i)
    bits[i] = static_cast<uint8_t>((1 + i % 4) | (i % 5 == 0 ? kGridRow : 0));
  for (const bool with_grid : {false, true}) {
    std::vector<uint8_t> b = bits;
    if (!with_grid)
      for (auto& x : b) x = static_cast<uint8_t>(choice_width(x));
    ScaleTrainingOptions opt;
    const LutLayer plain = scaled_kmeans(w, h, {f.data(), 0}, b, opt);
    int calls = 0;
    opt.row_kmeans = [&](const Tensor& wt, ImportanceView fv, std::span<const int> k,
                         std::span<const float> alpha, KMeansSolver solver,
                         std::vector<uint8_t>& labels, std::vector<std::vector<double>>& luts) {
      ++calls;
      const int64_t cols = wt.dim(1);
      std::vector<float> u(cols), g(cols);
      for (int64_t i = 0; i < wt.dim(0); ++i) {
        for (int64_t j = 0; j < cols; ++j) {
          u[j] = alpha[j] * wt.at(i, j);
          g[j] = fv.row(i, cols)[j] / (alpha[j] * alpha[j]);
        }
        const auto km = kmeans1d(u, g, k[i], solver);
        std::copy(km.labels.begin(), km.labels.end(), labels.begin() + i * cols);
        luts[i].assign(km.centroids.begin(), km.centroids.end());
      }
    };
    const LutLayer made = scaled_kmeans(w, h, {f.data(), 0}, b, opt);
    EXPECT_EQ(calls, 2) << "grid rows " << with_grid;  // before and after the training
    EXPECT_EQ(made.alpha, plain.alpha) << "grid rows " << with_grid;
    EXPECT_EQ(made.codebook, plain.codebook) << "grid rows " << with_grid;
    EXPECT_EQ(made.labels, plain.labels) << "grid rows " << with_grid;
    EXPECT_EQ(made.grid_rows, plain.grid_rows) << "grid rows " << with_grid;
  }
}

// A supplied builder of the refinement's systems (how the GPU's enters) is called for every block
// and its systems are the ones solved: wrapping the CPU's gives the same layer bit for bit, and
// all-zero systems (no solve succeeds) leave every row its weighted-mean LUT, as --no-refine.
TEST(ScaleTraining, RefineSystemsMakerIsUsed) {
  const auto [w, h, f] = uneven_problem(24, 64, 61);
  const std::vector<uint8_t> bits(w.dim(0), 3);
  ScaleTrainingOptions opt;
  const LutLayer plain = scaled_kmeans(w, h, {f.data(), 0}, bits, opt);
  int64_t rows_seen = 0;
  opt.refine_systems = [&](const RefineProblem& p) -> RefineSystemsFn {
    return [&, cpu = cpu_refine_systems(p)](const RefineBlock& b, std::vector<double>& a,
                                            std::vector<double>& rhs) {
      rows_seen += b.count;
      cpu(b, a, rhs);
    };
  };
  const LutLayer made = scaled_kmeans(w, h, {f.data(), 0}, bits, opt);
  EXPECT_EQ(rows_seen, w.dim(0));
  EXPECT_EQ(made.codebook, plain.codebook);
  EXPECT_EQ(made.labels, plain.labels);

  opt.refine_systems = [](const RefineProblem&) -> RefineSystemsFn {
    return [](const RefineBlock& b, std::vector<double>& a, std::vector<double>& rhs) {
      a.assign(static_cast<size_t>(b.a_off[b.count]), 0.0);
      rhs.assign(static_cast<size_t>(b.rhs_off[b.count]), 0.0);
    };
  };
  const LutLayer zeros = scaled_kmeans(w, h, {f.data(), 0}, bits, opt);
  ScaleTrainingOptions unrefined;
  unrefined.refine_full_hessian = false;
  const LutLayer means = scaled_kmeans(w, h, {f.data(), 0}, bits, unrefined);
  EXPECT_EQ(zeros.codebook, means.codebook);
  EXPECT_NE(plain.codebook, means.codebook);  // the refinement changes this layer
}

TEST(ScaleTraining, RefinementGainOverWeightedMeans) {
  double worst_gain = 1.0;
  for (int bits : {2, 3, 4}) {
    const auto L = testing::make_synthetic_layer(64, 256, 60 + bits);
    const Tensor w({L.rows, L.cols}, L.w);
    const Tensor h = damped_hessian(L);
    std::vector<float> f(L.cols);
    for (int64_t j = 0; j < L.cols; ++j) f[j] = h.at(j, j);
    const std::vector<uint8_t> b(L.rows, static_cast<uint8_t>(bits));
    ScaleTrainingOptions opt;
    opt.refine_full_hessian = true;
    ScaleTrainingReport rep;
    scaled_kmeans(w, h, {f.data(), 0}, b, opt, &rep);
    const double before = rep.kept_unscaled ? rep.error_unscaled : rep.error_trained;
    const double gain = 1.0 - rep.error_final / before;
    std::printf("%d bits: weighted means %.5g, full-Hessian LUT %.5g (%.1f%% lower)\n", bits,
                before, rep.error_final, 100.0 * gain);
    EXPECT_LE(rep.error_final, before);
    worst_gain = std::min(worst_gain, gain);
  }
  EXPECT_GT(worst_gain, 0.0);
}

}  // namespace
}  // namespace skim::quant
