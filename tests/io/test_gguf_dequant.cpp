// Every ggml block type: random blocks decoded by io::dequantize_row and by the element-wise
// decoders below, written from the format definitions (one output value at a time, every bit
// located by its index) and sharing no code with the reader. Results must be identical.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "io/gguf_dequant.h"

namespace skim {
namespace {

using io::GgmlType;

// IEEE half to float from its fields.
float fp16(const uint8_t* p) {
  const unsigned h = p[0] | (p[1] << 8);
  const int sign = (h >> 15) ? -1 : 1;
  const int e = (h >> 10) & 31;
  const int m = h & 1023;
  if (e == 0) return static_cast<float>(sign * std::ldexp(m, -24));
  return static_cast<float>(sign * std::ldexp(1024 + m, e - 25));
}
float bf16(const uint8_t* p) {
  const uint32_t bits = static_cast<uint32_t>(p[0] | (p[1] << 8)) << 16;
  return std::bit_cast<float>(bits);
}
int bit(const uint8_t* bytes, int index) {
  return (bytes[index / 8] >> (index % 8)) & 1;
}
int nibble(uint8_t b, bool high) {
  return high ? b >> 4 : b & 15;
}

// Value k of one block. Offsets are those of ggml-common.h.
using Decoder = std::function<float(const uint8_t* blk, int k)>;

float ref_q4_0(const uint8_t* b, int k) {  // d, qs[16]: value k<16 low nibble of qs[k]
  return static_cast<float>(nibble(b[2 + k % 16], k >= 16) - 8) * fp16(b);
}
float ref_q4_1(const uint8_t* b, int k) {  // d, m, qs[16]
  return static_cast<float>(nibble(b[4 + k % 16], k >= 16)) * fp16(b) + fp16(b + 2);
}
float ref_q5_0(const uint8_t* b, int k) {  // d, qh[4] (bit k = fifth bit of value k), qs[16]
  const int q = nibble(b[6 + k % 16], k >= 16) + 16 * bit(b + 2, k);
  return static_cast<float>(q - 16) * fp16(b);
}
float ref_q5_1(const uint8_t* b, int k) {  // d, m, qh[4], qs[16]
  const int q = nibble(b[8 + k % 16], k >= 16) + 16 * bit(b + 4, k);
  return static_cast<float>(q) * fp16(b) + fp16(b + 2);
}
float ref_q8_0(const uint8_t* b, int k) {  // d, qs[32]
  return static_cast<float>(static_cast<int8_t>(b[2 + k])) * fp16(b);
}
float ref_q8_1(const uint8_t* b, int k) {  // d, s, qs[32]
  return static_cast<float>(static_cast<int8_t>(b[4 + k])) * fp16(b);
}
// Q2_K: scales[16] @0, qs[64] @16, d @80, dmin @82. Value k: half n = k/128, within it the
// 2-bit field (k%128)/32 of byte qs[32n + k%32]; scale byte k/16 (low: scale, high: min).
float ref_q2_k(const uint8_t* b, int k) {
  const int n = k / 128, field = (k % 128) / 32, l = k % 32;
  const int q = (b[16 + 32 * n + l] >> (2 * field)) & 3;
  const uint8_t sc = b[k / 16];
  const float dl = fp16(b + 80) * static_cast<float>(sc & 15);
  const float ml = fp16(b + 82) * static_cast<float>(sc >> 4);
  return dl * static_cast<float>(q) - ml;
}
// Q3_K: hmask[32] @0, qs[64] @32, scales[12] @96, d @108. Scale j: low 4 bits = nibble of byte
// j%8 (high nibble for j>=8), high 2 bits = bits 2*(j/4) of byte 8 + j%4; minus 32. Value k: low
// 2 bits like Q2_K, high bit = bit (4n + field) of hmask[k%32]; a clear bit means minus 4.
float ref_q3_k(const uint8_t* b, int k) {
  const int j = k / 16;
  const uint8_t* s = b + 96;
  const int scale = (nibble(s[j % 8], j >= 8) | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
  const int n = k / 128, field = (k % 128) / 32, l = k % 32;
  const int low = (b[32 + 32 * n + l] >> (2 * field)) & 3;
  const int high = (b[l] >> (4 * n + field)) & 1;
  const int q = low - (high ? 0 : 4);
  return (fp16(b + 108) * static_cast<float>(scale)) * static_cast<float>(q);
}
// The 6-bit scale and min j (0..7) of Q4_K/Q5_K's 12 scale bytes: bytes 0-3 hold scales 0-3
// (low 6 bits) and the top 2 bits of scales 4-7; bytes 4-7 the same for mins; bytes 8-11 the low
// 4 bits of scales 4-7 (low nibble) and mins 4-7 (high nibble).
void k4_scale_min(const uint8_t* s, int j, int* sc, int* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[4 + j] & 63;
  } else {
    *sc = (s[8 + j - 4] & 15) | ((s[j - 4] >> 6) << 4);
    *mn = (s[8 + j - 4] >> 4) | ((s[4 + j - 4] >> 6) << 4);
  }
}
// Q4_K: d @0, dmin @2, scales @4, qs[128] @16. Value k: 64-value chunk c = k/64 uses bytes
// qs[32c..32c+31], low nibbles for its first 32 values, high for the next; sub-block k/32.
float ref_q4_k(const uint8_t* b, int k) {
  int sc, mn;
  k4_scale_min(b + 4, k / 32, &sc, &mn);
  const int q = nibble(b[16 + 32 * (k / 64) + k % 32], (k % 64) >= 32);
  return fp16(b) * static_cast<float>(sc) * static_cast<float>(q) -
         fp16(b + 2) * static_cast<float>(mn);
}
// Q5_K: d, dmin, scales @4, qh[32] @16, qs[128] @48. Fifth bit of value k: bit k/32 of qh[k%32].
float ref_q5_k(const uint8_t* b, int k) {
  int sc, mn;
  k4_scale_min(b + 4, k / 32, &sc, &mn);
  const int q = nibble(b[48 + 32 * (k / 64) + k % 32], (k % 64) >= 32) +
                16 * ((b[16 + k % 32] >> (k / 32)) & 1);
  return fp16(b) * static_cast<float>(sc) * static_cast<float>(q) -
         fp16(b + 2) * static_cast<float>(mn);
}
// Q6_K: ql[128] @0, qh[64] @128, scales[16] (int8) @192, d @208. Value k: half n = k/128,
// quarter f = (k%128)/32, l = k%32: low 4 bits = nibble (high if f >= 2) of ql[64n + l + 32(f%2)],
// high 2 bits = bits 2f of qh[32n + l]; minus 32; scale k/16.
float ref_q6_k(const uint8_t* b, int k) {
  const int n = k / 128, f = (k % 128) / 32, l = k % 32;
  const int low = nibble(b[64 * n + l + 32 * (f % 2)], f >= 2);
  const int high = (b[128 + 32 * n + l] >> (2 * f)) & 3;
  const int q = (low | (high << 4)) - 32;
  const int scale = static_cast<int8_t>(b[192 + k / 16]);
  return fp16(b + 208) * static_cast<float>(scale) * static_cast<float>(q);
}
// Q8_K: d (float) @0, qs[256] @4, bsums[16] @260.
float ref_q8_k(const uint8_t* b, int k) {
  float d;
  std::memcpy(&d, b, 4);
  return d * static_cast<float>(static_cast<int8_t>(b[4 + k]));
}
float ref_f16(const uint8_t* b, int) {
  return fp16(b);
}
float ref_bf16(const uint8_t* b, int) {
  return bf16(b);
}
float ref_f32(const uint8_t* b, int) {
  float v;
  std::memcpy(&v, b, 4);
  return v;
}

struct Case {
  GgmlType type;
  int block_size;
  int block_bytes;
  std::vector<int> half_offsets;  // fp16 fields that must be finite
  Decoder ref;
};

std::vector<Case> cases() {
  return {
      {GgmlType::kF32, 1, 4, {}, ref_f32},           {GgmlType::kF16, 1, 2, {0}, ref_f16},
      {GgmlType::kBF16, 1, 2, {}, ref_bf16},         {GgmlType::kQ4_0, 32, 18, {0}, ref_q4_0},
      {GgmlType::kQ4_1, 32, 20, {0, 2}, ref_q4_1},   {GgmlType::kQ5_0, 32, 22, {0}, ref_q5_0},
      {GgmlType::kQ5_1, 32, 24, {0, 2}, ref_q5_1},   {GgmlType::kQ8_0, 32, 34, {0}, ref_q8_0},
      {GgmlType::kQ8_1, 32, 36, {0, 2}, ref_q8_1},   {GgmlType::kQ2_K, 256, 84, {80, 82}, ref_q2_k},
      {GgmlType::kQ3_K, 256, 110, {108}, ref_q3_k},  {GgmlType::kQ4_K, 256, 144, {0, 2}, ref_q4_k},
      {GgmlType::kQ5_K, 256, 176, {0, 2}, ref_q5_k}, {GgmlType::kQ6_K, 256, 210, {208}, ref_q6_k},
      {GgmlType::kQ8_K, 256, 292, {}, ref_q8_k},
  };
}

// Random bytes, except that fp16/bf16 fields get their top exponent bit cleared (so they are
// finite: normal or subnormal below 2) and the F32/Q8_K floats a random value in [-3, 3].
std::vector<uint8_t> random_blocks(const Case& c, int n_blocks, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<uint8_t> data(static_cast<size_t>(n_blocks) * static_cast<size_t>(c.block_bytes));
  for (auto& x : data) x = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> val(-3.0f, 3.0f);
  for (int i = 0; i < n_blocks; ++i) {
    uint8_t* blk = data.data() + static_cast<size_t>(i) * static_cast<size_t>(c.block_bytes);
    for (int off : c.half_offsets) blk[off + 1] = static_cast<uint8_t>(blk[off + 1] & 0xbf);
    if (c.type == GgmlType::kF32 || c.type == GgmlType::kQ8_K) {
      const float v = val(rng);
      std::memcpy(blk, &v, 4);
    }
    if (c.type == GgmlType::kBF16) blk[1] = static_cast<uint8_t>(blk[1] & 0xbf);
  }
  return data;
}

TEST(GgufDequant, EveryTypeMatchesTheFormatDefinitionExactly) {
  std::mt19937 rng(1234);
  for (const Case& c : cases()) {
    const auto traits = io::ggml_type_traits(static_cast<uint32_t>(c.type));
    ASSERT_TRUE(traits.has_value());
    SCOPED_TRACE(traits->name);
    EXPECT_EQ(traits->block_size, c.block_size);
    EXPECT_EQ(traits->block_bytes, c.block_bytes);
    const int n_blocks = c.block_size == 1 ? 4096 : 64;
    const auto data = random_blocks(c, n_blocks, rng);
    const int64_t n = static_cast<int64_t>(n_blocks) * c.block_size;
    std::vector<float> got(static_cast<size_t>(n));
    io::dequantize_row(c.type, data.data(), got.data(), n);
    int64_t mismatches = 0;
    for (int64_t k = 0; k < n; ++k) {
      const uint8_t* blk = data.data() + (k / c.block_size) * c.block_bytes;
      const float want = c.ref(blk, static_cast<int>(k % c.block_size));
      if (std::bit_cast<uint32_t>(want) != std::bit_cast<uint32_t>(got[static_cast<size_t>(k)]) &&
          mismatches++ < 5)
        ADD_FAILURE() << "value " << k << ": got " << got[static_cast<size_t>(k)] << ", want "
                      << want;
    }
    EXPECT_EQ(mismatches, 0);
  }
}

TEST(GgufDequant, ParallelRowsEqualSingleRows) {
  std::mt19937 rng(7);
  for (const Case& c : cases()) {
    if (c.type != GgmlType::kQ4_1 && c.type != GgmlType::kQ6_K) continue;
    const int64_t row_len = 1024, rows = 600;  // past the parallel threshold
    const auto data = random_blocks(c, static_cast<int>(rows * row_len / c.block_size), rng);
    std::vector<float> all(static_cast<size_t>(rows * row_len));
    io::dequantize_rows(c.type, data.data(), all.data(), rows, row_len);
    const uint64_t row_bytes = io::ggml_row_bytes(c.type, row_len);
    std::vector<float> one(static_cast<size_t>(row_len));
    for (int64_t r = 0; r < rows; r += 37) {
      io::dequantize_row(c.type, data.data() + r * static_cast<int64_t>(row_bytes), one.data(),
                         row_len);
      EXPECT_TRUE(std::equal(one.begin(), one.end(), all.begin() + r * row_len)) << r;
    }
  }
}

TEST(GgufDequant, TypeNames) {
  EXPECT_EQ(io::ggml_type_name(12), "Q4_K");
  EXPECT_EQ(io::ggml_type_name(16), "IQ2_XXS");
  EXPECT_EQ(io::ggml_type_name(99), "type 99");
  EXPECT_FALSE(io::ggml_type_traits(16).has_value());
  EXPECT_EQ(io::ggml_row_bytes(GgmlType::kQ4_K, 512), 288u);
}

}  // namespace
}  // namespace skim
