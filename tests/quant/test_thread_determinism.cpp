// The quantized layer must not depend on the thread count: the pipeline promises byte-identical
// output for 1, 2 and 4 ranks, and each rank runs with a different number of OpenMP and BLAS
// threads. The layer is large enough that every parallel region and the threaded BLAS paths
// are taken; the error table, the bits, labels, codebooks and alpha must be equal bit for bit.
// The quantizer's own sums over rows or columns use partitions fixed by the problem size, never
// by the thread count; OpenBLAS sgemm splits M and N (not K) among its threads, so each element
// of a product is the same at any thread count. This test is what guards both.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <vector>

#include "kernels/cpu/blas.h"
#include "src/quant/hessian.h"
#include "src/quant/kmeans1d.h"
#include "src/quant/scale_training.h"
#include "src/quant/skim_layer.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

struct ThreadedRun {
  ErrorTable table;
  SkimLayerResult result;
  SkimLayerResult given_bits;
};

ThreadedRun quantize_with_threads(const Tensor& w, const Tensor& h, int threads) {
  const int omp_before = omp_get_max_threads();
  omp_set_num_threads(threads);
  kernels::set_blas_threads(threads);
  SkimOptions opt;
  opt.bits = 3.0;
  opt.scale.steps = 12;  // enough for the Adam state to carry any difference forward
  ThreadedRun r;
  r.table = skim_error_table(w, h, opt);
  r.result = quantize_skim_layer(w, h, opt);
  // Global mode: the same bits for every row decided elsewhere, refinement off.
  std::vector<uint8_t> bits(static_cast<size_t>(w.dim(0)));
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = static_cast<uint8_t>(1 + i % 4);
  opt.scale.refine_full_hessian = false;
  r.given_bits = quantize_skim_layer_with_bits(w, h, bits, opt);
  omp_set_num_threads(omp_before);
  kernels::set_blas_threads(omp_before);
  return r;
}

template <typename T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

void expect_same_layer(const LutLayer& a, const LutLayer& b, int threads, const char* what) {
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  EXPECT_TRUE(bitwise_equal(a.bits, b.bits))
      << what << ": bits differ at " << threads << " threads";
  EXPECT_TRUE(bitwise_equal(a.codebook_offset, b.codebook_offset)) << what << " at " << threads;
  EXPECT_TRUE(bitwise_equal(a.labels, b.labels))
      << what << ": labels differ at " << threads << " threads";
  EXPECT_TRUE(bitwise_equal(a.codebook, b.codebook))
      << what << ": codebook differs at " << threads << " threads";
  EXPECT_TRUE(bitwise_equal(a.alpha, b.alpha))
      << what << ": alpha differs at " << threads << " threads";
}

TEST(ThreadDeterminism, SkimLayerIsBitIdenticalAtOneTwoAndThreeThreads) {
  // 2048 x 512 = 2^20 weights: at the size where the quantizer starts its parallel regions.
  const int64_t rows = 2048, cols = 512;
  const auto L = testing::make_synthetic_layer_fast(rows, cols, 4242);
  const Tensor w({rows, cols}, L.w);
  Tensor h({cols, cols});
  for (size_t k = 0; k < L.h.size(); ++k) h.data()[k] = static_cast<float>(L.h[k]);
  damp_hessian(h);

  const ThreadedRun ref = quantize_with_threads(w, h, 1);
  // The training must have moved the loss, or the test would not exercise the gradient sums
  // (loss_last, compared below, depends on every step's gradient).
  ASSERT_LT(ref.given_bits.scale.loss_last, ref.given_bits.scale.loss_first);
  ASSERT_LT(ref.result.scale.loss_last, ref.result.scale.loss_first);
  for (const int threads : {2, 3}) {
    const ThreadedRun r = quantize_with_threads(w, h, threads);
    EXPECT_TRUE(bitwise_equal(ref.table.e, r.table.e))
        << "error table differs at " << threads << " threads";
    expect_same_layer(ref.result.layer, r.result.layer, threads, "layer mode");
    expect_same_layer(ref.given_bits.layer, r.given_bits.layer, threads, "given bits");
    EXPECT_EQ(ref.result.scale.loss_last, r.result.scale.loss_last) << threads << " threads";
    EXPECT_EQ(ref.given_bits.scale.loss_last, r.given_bits.scale.loss_last)
        << threads << " threads";
    EXPECT_EQ(ref.result.scale.error_final, r.result.scale.error_final) << threads << " threads";
  }
}

// The training loss and gradient themselves, bit for bit: a small difference in the gradient
// sums can vanish in the fp16 rounding of alpha, so the layer alone would not reveal it.
TEST(ThreadDeterminism, ScaleLossAndGradientAreBitIdentical) {
  const int64_t rows = 2048, cols = 512;
  const auto L = testing::make_synthetic_layer_fast(rows, cols, 4343);
  std::vector<float> h(L.h.begin(), L.h.end());
  std::vector<float> f(cols);
  for (int64_t j = 0; j < cols; ++j) f[j] = h[j * cols + j];
  std::vector<uint8_t> labels(static_cast<size_t>(rows * cols));
  std::vector<int> k(rows);
  for (int64_t i = 0; i < rows; ++i) {
    k[i] = 2 << (i % 4);
    const auto km = kmeans1d({L.w.data() + i * cols, static_cast<size_t>(cols)}, f, k[i]);
    std::copy(km.labels.begin(), km.labels.end(), labels.begin() + i * cols);
  }
  testing::SyntheticRng rng(7);
  std::vector<double> theta(cols);
  for (auto& t : theta) t = 0.2 * rng.normal();
  const ScaleProblem<float> p{rows,          cols,          L.w.data(), h.data(),
                              {f.data(), 0}, labels.data(), k.data()};
  const int omp_before = omp_get_max_threads();
  auto run = [&](int threads, std::vector<double>* grad) {
    omp_set_num_threads(threads);
    kernels::set_blas_threads(threads);
    return scale_loss_and_grad(p, theta, grad);
  };
  std::vector<double> g1;
  const double l1 = run(1, &g1);
  for (const int threads : {2, 3}) {
    std::vector<double> g;
    const double l = run(threads, &g);
    EXPECT_EQ(l, l1) << "loss differs at " << threads << " threads";
    EXPECT_TRUE(bitwise_equal(g, g1)) << "gradient differs at " << threads << " threads";
  }
  omp_set_num_threads(omp_before);
  kernels::set_blas_threads(omp_before);
}

}  // namespace
}  // namespace skim::quant
