// The packed LUT GEMV and GEMM on the GPU against their CPU twins quant::gemv / quant::gemm, on
// random layers of mixed widths 1..4 (shapes chosen to hit padded rows and columns, split-K and
// partial token tiles). Both sides accumulate fp32 products of the same fp16 LUT values and
// x / alpha; only the order differs, so the bound is 1e-5 of sum_j |w_ij x_j| per output.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "kernels/gpu/device_memory.h"
#include "kernels/gpu/lut_device_layout.h"
#include "kernels/gpu/lut_products.h"
#include "src/quant/packed_layer.h"
#include "tests/kernels_gpu/gpu_test_util.h"
#include "tests/kernels_gpu/random_lut_layer.h"
#include "tests/quant/random_lut_layer.h"

namespace skim::kernels::gpu {
namespace {

using skim::testing::random_floats;

// sum_j |W^_ij x_bj| for every (b, i): the scale of the rounding error of one output.
std::vector<double> magnitudes(const quant::PackedLutLayer& p, const std::vector<float>& x,
                               int64_t batch) {
  const std::vector<float> w = skim::testing::dense_weights(p);
  std::vector<double> m(static_cast<size_t>(batch * p.rows), 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < p.rows; ++i) {
      double s = 0.0;
      for (int64_t j = 0; j < p.cols; ++j)
        s += std::abs(double{w[static_cast<size_t>(i * p.cols + j)]} *
                      x[static_cast<size_t>(b * p.cols + j)]);
      m[static_cast<size_t>(b * p.rows + i)] = s;
    }
  return m;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& ref,
                  const std::vector<double>& mag, const char* what) {
  ASSERT_EQ(got.size(), ref.size());
  int bad = 0;
  for (size_t i = 0; i < ref.size() && bad < 10; ++i) {
    const double tol = 1e-5 * mag[i] + 1e-6;
    if (!(std::abs(double{got[i]} - ref[i]) <= tol)) {
      ADD_FAILURE() << what << " output " << i << ": gpu " << got[i] << " cpu " << ref[i] << " tol "
                    << tol;
      ++bad;
    }
  }
}

using Shape = std::tuple<int64_t, int64_t, std::vector<int>, bool>;
class LutProducts : public ::testing::TestWithParam<Shape> {};

TEST_P(LutProducts, GemvMatchesCpu) {
  SKIM_REQUIRE_GPU();
  const auto& [rows, cols, widths, with_alpha] = GetParam();
  const quant::PackedLutLayer p =
      skim::testing::random_lut_layer(rows, cols, widths, with_alpha, 21);
  const auto x = random_floats(static_cast<size_t>(cols), 22);
  std::vector<float> ref(static_cast<size_t>(rows));
  quant::gemv(p, x.data(), ref.data());
  const DeviceLutLayer layer(to_device_layout(p));
  DeviceArray<float> dx(x), dy(static_cast<size_t>(rows));
  layer.gemv(dx.data(), dy.data(), nullptr);
  expect_close(dy.to_host(), ref, magnitudes(p, x, 1), "gemv");
  // A second call must not accumulate onto the first (split-K zeroes y itself).
  layer.gemv(dx.data(), dy.data(), nullptr);
  expect_close(dy.to_host(), ref, magnitudes(p, x, 1), "gemv again");
}

TEST_P(LutProducts, GemmMatchesCpu) {
  SKIM_REQUIRE_GPU();
  const auto& [rows, cols, widths, with_alpha] = GetParam();
  const quant::PackedLutLayer p =
      skim::testing::random_lut_layer(rows, cols, widths, with_alpha, 31);
  const DeviceLutLayer layer(to_device_layout(p));
  for (const int64_t batch : {2, 8, 13, 33}) {
    const auto x =
        random_floats(static_cast<size_t>(batch * cols), 32 + static_cast<uint32_t>(batch));
    std::vector<float> ref(static_cast<size_t>(batch * rows));
    quant::gemm(p, x.data(), batch, ref.data());
    DeviceArray<float> dx(x), dy(ref.size());
    layer.gemm(dx.data(), batch, dy.data(), nullptr);
    expect_close(dy.to_host(), ref, magnitudes(p, x, batch), "gemm");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LutProducts,
    ::testing::Values(Shape{1, 1, {4}, false}, Shape{5, 17, {1}, true}, Shape{64, 320, {3}, false},
                      Shape{100, 1000, {2, 3}, true}, Shape{257, 1337, {1, 2, 3, 4}, true},
                      Shape{96, 4096, {3}, true}, Shape{33, 11008, {1, 2, 3, 4}, false},
                      Shape{2000, 200, {1, 2, 3, 4}, true}, Shape{40, 700, {5, 6, 7, 8}, true},
                      Shape{301, 2000, {2, 4, 6, 8}, false},
                      Shape{130, 1537, {1, 2, 3, 4, 5, 6, 7, 8}, true}));

// Split-K partial sums meet at the same outputs from several blocks: a wide layer with few rows.
TEST(LutProducts, WideLayerSplitAlongK) {
  SKIM_REQUIRE_GPU();
  const quant::PackedLutLayer p = skim::testing::random_lut_layer(16, 28672, {3, 4, 6}, true, 41);
  const auto x = random_floats(static_cast<size_t>(p.cols), 42);
  std::vector<float> ref(static_cast<size_t>(p.rows));
  quant::gemv(p, x.data(), ref.data());
  const DeviceLutLayer layer(to_device_layout(p));
  DeviceArray<float> dx(x), dy(ref.size());
  layer.gemv(dx.data(), dy.data(), nullptr);
  expect_close(dy.to_host(), ref, magnitudes(p, x, 1), "wide gemv");
}

// The sparse part (reserved weights) added after the LUT product, GEMV and GEMM, against
// quant::gemv / quant::gemm; the same bound (the sparse entries enter the magnitudes).
TEST(LutProducts, SparsePartIsAdded) {
  SKIM_REQUIRE_GPU();
  quant::PackedLutLayer p = skim::testing::random_lut_layer(300, 1000, {2, 3, 4}, true, 51);
  p.sparse = quant::testing::random_sparse_part(p.rows, p.cols, 52);
  const DeviceLutLayer layer(to_device_layout(p));
  for (const int64_t batch : {1, 7}) {
    const auto x =
        random_floats(static_cast<size_t>(batch * p.cols), 53 + static_cast<uint32_t>(batch));
    std::vector<float> ref(static_cast<size_t>(batch * p.rows));
    quant::gemm(p, x.data(), batch, ref.data());
    DeviceArray<float> dx(x), dy(ref.size());
    layer.gemm(dx.data(), batch, dy.data(), nullptr);
    expect_close(dy.to_host(), ref, magnitudes(p, x, batch), "sparse gemm");
  }
}

}  // namespace
}  // namespace skim::kernels::gpu
