#include "kernels/cpu/lut_row.h"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "src/core/error.h"
#include "src/core/half.h"

namespace skim::kernels {
namespace {

int64_t row_bytes(int64_t cols, int bits) {
  return (cols * bits + 7) / 8;
}

// The last cols % 8 values of a row, added to the lane sums.
template <int B>
void tail_dot(const uint8_t* packed, int64_t cols, const float* table, const float* x, float* acc) {
  constexpr uint64_t kMask = (uint64_t{1} << B) - 1;
  const int64_t full = cols / 8, rest = cols - full * 8;
  if (rest == 0) return;
  uint64_t w = 0;
  std::memcpy(&w, packed + full * B, static_cast<size_t>(row_bytes(rest, B)));
  for (int64_t k = 0; k < rest; ++k) acc[k] += table[(w >> (k * B)) & kMask] * x[full * 8 + k];
}

float reduce_lanes(const float* acc) {
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// Eight values always fill exactly B bytes: the row is read one B-byte word at a time.
template <int B>
float scalar_dot(const uint8_t* packed, int64_t cols, const float* table, const float* x) {
  constexpr uint64_t kMask = (uint64_t{1} << B) - 1;
  const int64_t full = cols / 8;
  float acc[8] = {};
  for (int64_t g = 0; g < full; ++g) {
    uint64_t w = 0;
    std::memcpy(&w, packed + g * B, B);
    const float* xg = x + g * 8;
    for (int k = 0; k < 8; ++k) acc[k] += table[(w >> (k * B)) & kMask] * xg[k];
  }
  tail_dot<B>(packed, cols, table, x, acc);
  return reduce_lanes(acc);
}

template <int B>
void scalar_decode(const uint8_t* packed, int64_t cols, const float* table, float* out) {
  constexpr uint64_t kMask = (uint64_t{1} << B) - 1;
  const int64_t full = cols / 8, rest = cols - full * 8;
  for (int64_t g = 0; g < full; ++g) {
    uint64_t w = 0;
    std::memcpy(&w, packed + g * B, B);
    for (int k = 0; k < 8; ++k) out[g * 8 + k] = table[(w >> (k * B)) & kMask];
  }
  if (rest == 0) return;
  uint64_t w = 0;
  std::memcpy(&w, packed + full * B, static_cast<size_t>(row_bytes(rest, B)));
  for (int64_t k = 0; k < rest; ++k) out[full * 8 + k] = table[(w >> (k * B)) & kMask];
}

// The eight labels of one group (B bytes in w) looked up in the table registers t0..t3.
template <int B>
__attribute__((target("avx2,fma"), always_inline)) inline __m256 avx2_lookup(
    uint64_t w, __m256i shifts, __m256 t0, __m256 t1, __m256 t2, __m256 t3, const float* table) {
  __m256i word;
  if constexpr (B <= 4) {
    word = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(w)));
  } else {
    const auto lo = static_cast<int>(static_cast<uint32_t>(w));
    const auto hi = static_cast<int>(static_cast<uint32_t>(w >> (4 * B)));
    word = _mm256_setr_epi32(lo, lo, lo, lo, hi, hi, hi, hi);
  }
  const __m256i idx = _mm256_srlv_epi32(word, shifts);
  if constexpr (B <= 3) {
    return _mm256_permutevar8x32_ps(t0, idx);
  } else if constexpr (B == 4) {
    const __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t0, idx), _mm256_permutevar8x32_ps(t1, idx),
                            bit3);
  } else if constexpr (B == 5) {
    const __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));
    const __m256 bit4 = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 27));
    const __m256 low = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t0, idx),
                                        _mm256_permutevar8x32_ps(t1, idx), bit3);
    const __m256 high = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t2, idx),
                                         _mm256_permutevar8x32_ps(t3, idx), bit3);
    return _mm256_blendv_ps(low, high, bit4);
  } else {
    return _mm256_i32gather_ps(table, _mm256_and_si256(idx, _mm256_set1_epi32((1 << B) - 1)), 4);
  }
}

// AVX2: the eight labels of a group go to eight 32-bit lanes (one variable shift each), and the
// table lookup is a register permute: vpermps reads the low three bits of each lane, so a table
// of up to 8 entries is one register (narrower tables repeated to 8), 16 entries two registers
// and a blend on bit 3, 32 entries four registers and blends on bits 3 and 4. Wider tables
// gather from memory.
template <int B>
__attribute__((target("avx2,fma"))) float avx2_dot(const uint8_t* packed, int64_t cols,
                                                   const float* table, const float* x) {
  constexpr int kEntries = 1 << B;
  __m256 t0 = _mm256_setzero_ps(), t1 = t0, t2 = t0, t3 = t0;
  if constexpr (B <= 5) {
    alignas(32) float lut[32];
    for (int k = 0; k < (B <= 3 ? 8 : kEntries); ++k) lut[k] = table[k & (kEntries - 1)];
    t0 = _mm256_load_ps(lut);
    if constexpr (B >= 4) t1 = _mm256_load_ps(lut + 8);
    if constexpr (B == 5) {
      t2 = _mm256_load_ps(lut + 16);
      t3 = _mm256_load_ps(lut + 24);
    }
  }
  // The group's eight labels in eight lanes: for B <= 4 they fit one 32-bit word (broadcast,
  // lane k shifted by k*B); wider, lanes 0-3 take the group's low word and lanes 4-7 the word
  // starting at value 4.
  const __m256i shifts = B <= 4 ? _mm256_setr_epi32(0, B, 2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B)
                                : _mm256_setr_epi32(0, B, 2 * B, 3 * B, 0, B, 2 * B, 3 * B);
  // A group is read as one whole 4- or 8-byte word (the bits past its B bytes are ignored):
  // assembling exactly B bytes on the stack would stall on store forwarding. The last groups,
  // whose word would run past the row, are assembled byte-exact.
  constexpr int64_t kWord = B <= 4 ? 4 : 8;
  const int64_t full = cols / 8;
  const int64_t bytes = row_bytes(cols, B);
  const int64_t whole_words = bytes >= kWord ? std::min(full, (bytes - kWord) / B + 1) : 0;
  using Word = std::conditional_t<(B <= 4), uint32_t, uint64_t>;
  auto whole_word = [packed](int64_t g) {
    Word w;
    std::memcpy(&w, packed + g * B, sizeof(Word));
    return static_cast<uint64_t>(w);
  };
  auto exact_word = [packed](int64_t g) {
    uint64_t w = 0;
    std::memcpy(&w, packed + g * B, B);
    return w;
  };
  // Four groups per step into four sums (the FMA latency would otherwise bound the loop);
  // the sums are added in a fixed order at the end, so a row's order depends on its length only.
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  int64_t g = 0;
  for (; g + 4 <= whole_words; g += 4) {
    const uint64_t w0 = whole_word(g), w1 = whole_word(g + 1), w2 = whole_word(g + 2),
                   w3 = whole_word(g + 3);
    acc0 = _mm256_fmadd_ps(avx2_lookup<B>(w0, shifts, t0, t1, t2, t3, table),
                           _mm256_loadu_ps(x + g * 8), acc0);
    acc1 = _mm256_fmadd_ps(avx2_lookup<B>(w1, shifts, t0, t1, t2, t3, table),
                           _mm256_loadu_ps(x + g * 8 + 8), acc1);
    acc2 = _mm256_fmadd_ps(avx2_lookup<B>(w2, shifts, t0, t1, t2, t3, table),
                           _mm256_loadu_ps(x + g * 8 + 16), acc2);
    acc3 = _mm256_fmadd_ps(avx2_lookup<B>(w3, shifts, t0, t1, t2, t3, table),
                           _mm256_loadu_ps(x + g * 8 + 24), acc3);
  }
  for (; g < full; ++g)
    acc0 = _mm256_fmadd_ps(avx2_lookup<B>(g < whole_words ? whole_word(g) : exact_word(g), shifts,
                                          t0, t1, t2, t3, table),
                           _mm256_loadu_ps(x + g * 8), acc0);
  const __m256 acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  tail_dot<B>(packed, cols, table, x, lanes);
  return reduce_lanes(lanes);
}

template <typename Fn>
float by_width(int bits, const Fn& fn) {
  switch (bits) {
    case 1:
      return fn(std::integral_constant<int, 1>{});
    case 2:
      return fn(std::integral_constant<int, 2>{});
    case 3:
      return fn(std::integral_constant<int, 3>{});
    case 4:
      return fn(std::integral_constant<int, 4>{});
    case 5:
      return fn(std::integral_constant<int, 5>{});
    case 6:
      return fn(std::integral_constant<int, 6>{});
    case 7:
      return fn(std::integral_constant<int, 7>{});
    case 8:
      return fn(std::integral_constant<int, 8>{});
    default:
      fail(ErrorKind::kInternal, "packed row width {} outside 1..8", bits);
  }
}

// The 2^B fp16 entries of a table as fp32 (exact), eight at a time.
template <int B>
__attribute__((target("avx2,fma,f16c"))) void f16c_table(const uint16_t* table, float* out) {
  if constexpr (B >= 3) {
    for (int k = 0; k < (1 << B); k += 8)
      _mm256_storeu_ps(
          out + k, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table + k))));
  } else {
    for (int k = 0; k < (1 << B); ++k) out[k] = _cvtsh_ss(table[k]);
  }
}

}  // namespace

bool cpu_has_avx2_fma_f16c() {
  // F16C by CPUID (leaf 1, ECX bit 29): not every compiler's __builtin_cpu_supports knows it.
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
    return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
}

float lut_dot_scalar(const uint8_t* packed, int64_t cols, int bits, const float* table,
                     const float* x) {
  return by_width(bits,
                  [&](auto b) { return scalar_dot<decltype(b)::value>(packed, cols, table, x); });
}

float lut_dot_avx2(const uint8_t* packed, int64_t cols, int bits, const float* table,
                   const float* x) {
  SKIM_ASSERT(cpu_has_avx2_fma_f16c());
  return by_width(bits,
                  [&](auto b) { return avx2_dot<decltype(b)::value>(packed, cols, table, x); });
}

float lut_dot(const uint8_t* packed, int64_t cols, int bits, const float* table, const float* x) {
  return cpu_has_avx2_fma_f16c() ? lut_dot_avx2(packed, cols, bits, table, x)
                                 : lut_dot_scalar(packed, cols, bits, table, x);
}

float lut_dot(const uint8_t* packed, int64_t cols, int bits, const uint16_t* table,
              const float* x) {
  const bool avx2 = cpu_has_avx2_fma_f16c();
  return by_width(bits, [&](auto b) {
    constexpr int B = decltype(b)::value;
    alignas(32) float t[1 << B];
    if (!avx2) {
      for (int k = 0; k < (1 << B); ++k) t[k] = half_to_float(table[k]);
      return scalar_dot<B>(packed, cols, t, x);
    }
    f16c_table<B>(table, t);
    return avx2_dot<B>(packed, cols, t, x);
  });
}

void lut_decode(const uint8_t* packed, int64_t cols, int bits, const float* table, float* out) {
  by_width(bits, [&](auto b) {
    scalar_decode<decltype(b)::value>(packed, cols, table, out);
    return 0.0f;
  });
}

}  // namespace skim::kernels
