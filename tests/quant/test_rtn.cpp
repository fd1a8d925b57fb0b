#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "src/core/error.h"
#include "src/core/half.h"
#include "src/quant/rtn.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

Tensor synthetic_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<float> w = testing::synthetic_weights(rows, cols, seed);
  return Tensor({rows, cols}, std::move(w));
}

// Checks every property RTN promises, against the weights alone.
void check_rtn(const Tensor& w, const UniformLayer& q, int bits, int64_t group_size) {
  const int64_t rows = w.dim(0);
  const int64_t cols = w.dim(1);
  const int64_t width = group_size == 0 ? cols : group_size;
  const int64_t groups = (cols + width - 1) / width;
  ASSERT_EQ(q.rows, rows);
  ASSERT_EQ(q.cols, cols);
  ASSERT_EQ(q.bits, bits);
  ASSERT_EQ(q.groups(), groups);
  ASSERT_EQ(q.codes.size(), static_cast<size_t>(rows * cols));
  ASSERT_TRUE(q.perm.empty());
  const int maxq = (1 << bits) - 1;
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t begin = g * width;
      const int64_t end = std::min(cols, begin + width);
      float lo = 0.0f, hi = 0.0f;  // the range always includes 0
      for (int64_t j = begin; j < end; ++j) {
        lo = std::min(lo, w.at(i, j));
        hi = std::max(hi, w.at(i, j));
      }
      if (lo == 0.0f && hi == 0.0f) {  // an all-zero group gets the range [-1, 1]
        lo = -1.0f;
        hi = 1.0f;
      }
      const float s = half_to_float(q.scale[static_cast<size_t>(i * groups + g)]);
      const float z = half_to_float(q.zero[static_cast<size_t>(i * groups + g)]);
      // The grid spans the range, and is at most one fp16 step coarser than needed.
      const float needed = (hi - lo) / static_cast<float>(maxq);
      ASSERT_GE(s, needed);
      ASSERT_LE(s, needed * (1.0f + 1.0f / 512.0f));
      ASSERT_EQ(z, std::floor(z));
      ASSERT_GE(z, 0.0f);
      ASSERT_LE(z, static_cast<float>(maxq));
      for (int64_t j = begin; j < end; ++j) {
        const int code = q.codes[static_cast<size_t>(i * cols + j)];
        ASSERT_LE(code, maxq);
        const double v = static_cast<double>(s) * (code - static_cast<double>(z));
        const double e = std::fabs(w.at(i, j) - v);
        ASSERT_LE(e, 0.5 * s * (1.0 + 1e-5)) << "row " << i << " col " << j;
        // Nearest grid point: neither neighbour is closer.
        for (int nb : {code - 1, code + 1}) {
          if (nb < 0 || nb > maxq) continue;
          const double vn = static_cast<double>(s) * (nb - static_cast<double>(z));
          ASSERT_LE(e, std::fabs(w.at(i, j) - vn) + 1e-6 * s);
        }
      }
    }
  }
  // dequantize() gives the same grid values.
  const Tensor d = dequantize(q);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t g = j / width;
      const float s = half_to_float(q.scale[static_cast<size_t>(i * groups + g)]);
      const float z = half_to_float(q.zero[static_cast<size_t>(i * groups + g)]);
      ASSERT_FLOAT_EQ(d.at(i, j), s * (q.codes[static_cast<size_t>(i * cols + j)] - z));
    }
}

TEST(Rtn, PerRowEveryBitWidth) {
  const Tensor w = synthetic_matrix(24, 77, 1);
  for (int bits = 2; bits <= 8; ++bits) {
    SCOPED_TRACE(bits);
    check_rtn(w, rtn_quantize(w, {.bits = bits, .group_size = 0}), bits, 0);
  }
}

TEST(Rtn, GroupsIncludingARaggedLastGroup) {
  const Tensor w = synthetic_matrix(16, 100, 2);
  for (int64_t gs : {8, 32, 64}) {
    for (int bits : {2, 3, 4, 8}) {
      SCOPED_TRACE(::testing::Message() << "group " << gs << " bits " << bits);
      check_rtn(w, rtn_quantize(w, {.bits = bits, .group_size = gs}), bits, gs);
    }
  }
}

TEST(Rtn, GroupsReduceError) {
  const Tensor w = synthetic_matrix(32, 256, 3);
  auto err = [&](const UniformLayer& q) {
    const Tensor d = dequantize(q);
    double e = 0.0;
    for (int64_t k = 0; k < w.numel(); ++k) e += std::pow(w.data()[k] - d.data()[k], 2);
    return e;
  };
  const double per_row = err(rtn_quantize(w, {.bits = 3, .group_size = 0}));
  const double grouped = err(rtn_quantize(w, {.bits = 3, .group_size = 32}));
  EXPECT_LT(grouped, 0.8 * per_row);
}

TEST(Rtn, ConstantAndZeroRows) {
  Tensor w({3, 5}, {0, 0, 0, 0, 0, 2, 2, 2, 2, 2, -3, -3, -3, -3, -3});
  const UniformLayer q = rtn_quantize(w, {.bits = 4, .group_size = 0});
  check_rtn(w, q, 4, 0);
  const Tensor d = dequantize(q);
  for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(d.at(0, j), 0.0f);  // zero is on the grid
}

TEST(Rtn, RejectsBadInput) {
  const Tensor w = synthetic_matrix(4, 8, 4);
  for (int bits : {1, 9}) {
    try {
      rtn_quantize(w, {.bits = bits, .group_size = 0});
      FAIL() << "bits " << bits << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    }
  }
  Tensor bad = w;
  bad.at(1, 2) = std::nanf("");
  EXPECT_THROW(rtn_quantize(bad, {.bits = 4, .group_size = 0}), Error);
  EXPECT_THROW(rtn_quantize(Tensor({8}), {.bits = 4, .group_size = 0}), Error);
}

}  // namespace
}  // namespace skim::quant
