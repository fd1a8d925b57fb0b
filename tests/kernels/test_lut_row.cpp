// One packed LUT row: the dot product (scalar and AVX2 kernels) against a naive reference in
// double that unpacks the labels bit by bit, and the decode against the same unpacking, for
// every width 1..8 and row lengths that end mid-group, mid-byte and mid-word.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/lut_row.h"
#include "src/core/half.h"

namespace skim::kernels {
namespace {

struct Row {
  std::vector<uint8_t> packed;
  std::vector<int> labels;
};

// Labels packed LSB first, value j at bit j * bits (docs/FORMAT.md), one bit at a time.
Row random_row(std::mt19937_64& rng, int64_t cols, int bits) {
  Row r;
  r.packed.assign(static_cast<size_t>((cols * bits + 7) / 8), 0);
  std::uniform_int_distribution<int> d(0, (1 << bits) - 1);
  for (int64_t j = 0; j < cols; ++j) {
    const int v = d(rng);
    r.labels.push_back(v);
    for (int b = 0; b < bits; ++b)
      if ((v >> b) & 1) {
        const int64_t t = j * bits + b;
        r.packed[static_cast<size_t>(t / 8)] |= static_cast<uint8_t>(1u << (t % 8));
      }
  }
  return r;
}

TEST(LutRow, BothKernelsMatchANaiveDotForEveryWidthAndLength) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> n(0.0f, 1.0f);
  for (int bits = 1; bits <= 8; ++bits)
    for (int64_t cols : {1, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100, 576, 1000, 1536}) {
      const Row row = random_row(rng, cols, bits);
      std::vector<float> table(size_t{1} << bits), x(static_cast<size_t>(cols));
      for (float& t : table) t = n(rng);
      for (float& v : x) v = n(rng);
      double ref = 0.0, mag = 0.0;
      for (int64_t j = 0; j < cols; ++j) {
        const double p = static_cast<double>(table[static_cast<size_t>(row.labels[j])]) * x[j];
        ref += p;
        mag += std::fabs(p);
      }
      // fp32 sums of cols products: a few ulps of the sum of magnitudes.
      const double tol = 4.0 * cols * 6e-8 * mag + 1e-30;
      const float scalar = lut_dot_scalar(row.packed.data(), cols, bits, table.data(), x.data());
      EXPECT_NEAR(scalar, ref, tol) << "scalar, bits " << bits << ", cols " << cols;
      if (cpu_has_avx2_fma_f16c()) {
        const float avx2 = lut_dot_avx2(row.packed.data(), cols, bits, table.data(), x.data());
        EXPECT_NEAR(avx2, ref, tol) << "avx2, bits " << bits << ", cols " << cols;
      }
      EXPECT_EQ(lut_dot(row.packed.data(), cols, bits, table.data(), x.data()),
                cpu_has_avx2_fma_f16c()
                    ? lut_dot_avx2(row.packed.data(), cols, bits, table.data(), x.data())
                    : scalar);
    }
}

// Decoding gives table[label] for every label, the row read bit by bit as reference.
TEST(LutRow, DecodeMatchesANaiveUnpackForEveryWidthAndLength) {
  std::mt19937_64 rng(13);
  for (int bits = 1; bits <= 8; ++bits)
    for (int64_t cols : {1, 7, 8, 9, 17, 576}) {
      const Row row = random_row(rng, cols, bits);
      std::vector<float> table(size_t{1} << bits), out(static_cast<size_t>(cols));
      for (size_t k = 0; k < table.size(); ++k) table[k] = static_cast<float>(k) + 0.5f;
      lut_decode(row.packed.data(), cols, bits, table.data(), out.data());
      for (int64_t j = 0; j < cols; ++j)
        ASSERT_EQ(out[j], table[static_cast<size_t>(row.labels[j])]) << bits << " " << j;
    }
}

// A stored fp16 table gives exactly the result of the same table converted to fp32 first.
TEST(LutRow, Fp16TableEqualsItsExactFp32Conversion) {
  std::mt19937_64 rng(11);
  std::normal_distribution<float> n(0.0f, 1.0f);
  for (int bits = 1; bits <= 8; ++bits) {
    const int64_t cols = 200;
    const Row row = random_row(rng, cols, bits);
    std::vector<uint16_t> half(size_t{1} << bits);
    std::vector<float> table(half.size()), x(static_cast<size_t>(cols));
    for (size_t k = 0; k < half.size(); ++k) {
      half[k] = float_to_half(n(rng));
      table[k] = half_to_float(half[k]);
    }
    for (float& v : x) v = n(rng);
    EXPECT_EQ(lut_dot(row.packed.data(), cols, bits, half.data(), x.data()),
              lut_dot(row.packed.data(), cols, bits, table.data(), x.data()))
        << "bits " << bits;
  }
}

// The kernels read whole 4- or 8-byte words where they fit: a row that ends right before an
// unreadable page must still be read within it (an over-read would crash the test).
TEST(LutRow, ReadsNoByteOutsideTheRow) {
  const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* mem = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* base = static_cast<uint8_t*>(mem);
  ASSERT_EQ(mprotect(base + page, page, PROT_NONE), 0);
  std::mt19937_64 rng(3);
  for (int bits = 1; bits <= 8; ++bits)
    for (int64_t cols : {1, 8, 13, 24, 40, 576}) {
      const Row row = random_row(rng, cols, bits);
      uint8_t* at = base + page - row.packed.size();
      std::copy(row.packed.begin(), row.packed.end(), at);
      std::vector<float> table(size_t{1} << bits, 1.0f), x(static_cast<size_t>(cols), 1.0f);
      EXPECT_EQ(lut_dot(at, cols, bits, table.data(), x.data()), static_cast<float>(cols));
      EXPECT_EQ(lut_dot_scalar(at, cols, bits, table.data(), x.data()), static_cast<float>(cols));
    }
  munmap(mem, 2 * page);
}

}  // namespace
}  // namespace skim::kernels
