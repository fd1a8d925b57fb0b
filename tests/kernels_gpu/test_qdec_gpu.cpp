// QDEC's residual correction on the GPU (kernels/gpu/qdec.h) against its CPU twin
// (kernels/cpu/qdec.h) applied token by token, with the codes in device memory and in mapped
// pinned host memory (zero-copy).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/qdec.h"
#include "kernels/gpu/device_memory.h"
#include "kernels/gpu/qdec.h"
#include "src/core/error.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace skim::kernels::gpu {
namespace {

using skim::testing::random_floats;

// One random problem: codes (random bytes, so an odd row count's unused high nibble is not 0
// either), positive scales, x with a few large outliers, each token's top-k channels.
struct Problem {
  int64_t rows, cols, k, tokens;
  std::vector<uint8_t> codes;
  std::vector<float> scale, x, y0;
  std::vector<int32_t> channels;

  Problem(int64_t rows_, int64_t cols_, int64_t k_, int64_t tokens_, uint32_t seed)
      : rows(rows_), cols(cols_), k(k_), tokens(tokens_) {
    std::mt19937 rng(seed);
    codes.resize(static_cast<size_t>(cols * qdec_column_bytes(rows)));
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& c : codes) c = static_cast<uint8_t>(byte(rng));
    std::uniform_real_distribution<float> positive(0.01f, 0.2f);
    scale.resize(static_cast<size_t>(rows));
    for (auto& s : scale) s = positive(rng);
    x = random_floats(static_cast<size_t>(tokens * cols), seed + 1);
    std::uniform_int_distribution<int64_t> pick(0, tokens * cols - 1);
    for (int o = 0; o < 3; ++o) x[static_cast<size_t>(pick(rng))] *= 100.0f;
    y0 = random_floats(static_cast<size_t>(tokens * rows), seed + 2);
    channels.resize(static_cast<size_t>(tokens * k));
    for (int64_t b = 0; b < tokens; ++b)
      top_k_channels(x.data() + b * cols, cols, k, channels.data() + b * k);
  }

  std::vector<float> cpu() const {
    std::vector<float> y = y0, acc(static_cast<size_t>(rows));
    for (int64_t b = 0; b < tokens; ++b)
      kernels::qdec_correct(codes.data(), scale.data(), rows, x.data() + b * cols,
                            channels.data() + b * k, k, acc.data(), y.data() + b * rows);
    return y;
  }

  // The GPU result with the codes at `device_codes` (device or mapped host memory).
  std::vector<float> gpu(const uint8_t* device_codes) const {
    DeviceArray<float> dscale(scale), dx(x), dy(y0);
    DeviceArray<int32_t> dch(channels);
    qdec_correct(device_codes, dscale.data(), rows, cols, dx.data(), dch.data(), k, tokens,
                 dy.data(), nullptr);
    return dy.to_host();
  }

  // Both sides add the same products in the same order; they differ only where the GPU fuses a
  // multiply-add (one rounding less per step). |acc| <= 8 sum_{j in S} |x_j|, so 1e-5 of that
  // bound (times the largest scale) covers the drift over up to 200 steps with a wide margin;
  // 1e-6 absolute covers rounding y (N(0,1)) when the correction is tiny or k is 0.
  void expect_near(const std::vector<float>& got, const std::vector<float>& ref) const {
    ASSERT_EQ(got.size(), ref.size());
    float max_scale = 0.0f;
    for (float s : scale) max_scale = std::max(max_scale, s);
    for (int64_t b = 0; b < tokens; ++b) {
      double sum_abs = 0.0;
      for (int64_t s = 0; s < k; ++s)
        sum_abs += std::abs(double{x[static_cast<size_t>(b * cols + channels[b * k + s])]});
      const double tol = 1e-5 * sum_abs * 8.0 * max_scale + 1e-6;
      for (int64_t i = 0; i < rows; ++i) {
        const auto e = static_cast<size_t>(b * rows + i);
        ASSERT_NEAR(got[e], ref[e], tol) << "rows " << rows << " cols " << cols << " k " << k
                                         << " tokens " << tokens << " token " << b << " row " << i;
      }
    }
  }
};

TEST(GpuQdec, MatchesCpuTwin) {
  SKIM_REQUIRE_GPU();
  uint32_t seed = 1;
  for (const int64_t rows : {1, 7, 64, 301})
    for (const int64_t cols : {1, 9, 64, 200})
      for (const int64_t tokens : {1, 3, 17})
        for (const int64_t k : {int64_t{0}, int64_t{1}, cols / 8, cols}) {
          const Problem p(rows, cols, k, tokens, seed += 7);
          const DeviceArray<uint8_t> dcodes(p.codes);
          p.expect_near(p.gpu(dcodes.data()), p.cpu());
        }
}

// The codes in mapped pinned host memory, read by the kernel over the bus: the same kernel on
// the same data, so the result is bit for bit the device-memory one.
TEST(GpuQdec, ZeroCopyCodes) {
  SKIM_REQUIRE_GPU();
  for (const int64_t rows : {7, 301}) {
    const Problem p(rows, 200, 25, 17, 1000 + static_cast<uint32_t>(rows));
    struct Pinned {
      void* p = nullptr;
      ~Pinned() {
        if (p != nullptr) cudaFreeHost(p);
      }
    } host;
    ASSERT_EQ(cudaHostAlloc(&host.p, p.codes.size(), cudaHostAllocMapped), cudaSuccess);
    std::memcpy(host.p, p.codes.data(), p.codes.size());
    void* mapped = nullptr;
    ASSERT_EQ(cudaHostGetDevicePointer(&mapped, host.p, 0), cudaSuccess);
    const auto got = p.gpu(static_cast<const uint8_t*>(mapped));
    p.expect_near(got, p.cpu());
    const DeviceArray<uint8_t> dcodes(p.codes);
    const auto on_device = p.gpu(dcodes.data());
    for (size_t e = 0; e < got.size(); ++e) ASSERT_EQ(got[e], on_device[e]) << e;
  }
}

// Argument checks run on the host, before any CUDA call.
TEST(GpuQdec, RejectsBadSizes) {
  float y = 0.0f;
  const auto kind = [&](int64_t rows, int64_t cols, int64_t k, int64_t tokens) {
    try {
      qdec_correct(nullptr, nullptr, rows, cols, nullptr, nullptr, k, tokens, &y, nullptr);
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::kStopped;  // did not throw
  };
  EXPECT_EQ(kind(4, 8, 9, 1), ErrorKind::kInternal);   // k > cols
  EXPECT_EQ(kind(4, 8, -1, 1), ErrorKind::kInternal);  // k < 0
  EXPECT_EQ(kind(-1, 8, 1, 1), ErrorKind::kInternal);
  EXPECT_EQ(kind(4, -1, 0, 1), ErrorKind::kInternal);
  EXPECT_EQ(kind(4, 8, 1, -1), ErrorKind::kInternal);
  EXPECT_EQ(kind(0, 8, 8, 3), ErrorKind::kStopped);  // empty: nothing to do, no launch
  EXPECT_EQ(kind(4, 8, 8, 0), ErrorKind::kStopped);
}

}  // namespace
}  // namespace skim::kernels::gpu
