#include "io/gguf_dequant.h"

#include <cstring>

#include "src/core/error.h"
#include "src/core/half.h"

namespace skim::io {
namespace {

constexpr GgmlTypeTraits kTraits[] = {
    {GgmlType::kF32, "F32", 1, 4},
    {GgmlType::kF16, "F16", 1, 2},
    {GgmlType::kBF16, "BF16", 1, 2},
    {GgmlType::kQ4_0, "Q4_0", kQK4_0, sizeof(BlockQ4_0)},
    {GgmlType::kQ4_1, "Q4_1", kQK4_1, sizeof(BlockQ4_1)},
    {GgmlType::kQ5_0, "Q5_0", kQK5_0, sizeof(BlockQ5_0)},
    {GgmlType::kQ5_1, "Q5_1", kQK5_1, sizeof(BlockQ5_1)},
    {GgmlType::kQ8_0, "Q8_0", kQK8_0, sizeof(BlockQ8_0)},
    {GgmlType::kQ8_1, "Q8_1", kQK8_1, sizeof(BlockQ8_1)},
    {GgmlType::kQ2_K, "Q2_K", kQK_K, sizeof(BlockQ2_K)},
    {GgmlType::kQ3_K, "Q3_K", kQK_K, sizeof(BlockQ3_K)},
    {GgmlType::kQ4_K, "Q4_K", kQK_K, sizeof(BlockQ4_K)},
    {GgmlType::kQ5_K, "Q5_K", kQK_K, sizeof(BlockQ5_K)},
    {GgmlType::kQ6_K, "Q6_K", kQK_K, sizeof(BlockQ6_K)},
    {GgmlType::kQ8_K, "Q8_K", kQK_K, sizeof(BlockQ8_K)},
};

// ggml types this reader cannot decode, named in error messages.
const char* other_type_name(uint32_t raw) {
  switch (raw) {
    case 4:
      return "Q4_2 (removed)";
    case 5:
      return "Q4_3 (removed)";
    case 16:
      return "IQ2_XXS";
    case 17:
      return "IQ2_XS";
    case 18:
      return "IQ3_XXS";
    case 19:
      return "IQ1_S";
    case 20:
      return "IQ4_NL";
    case 21:
      return "IQ3_S";
    case 22:
      return "IQ2_S";
    case 23:
      return "IQ4_XS";
    case 24:
      return "I8";
    case 25:
      return "I16";
    case 26:
      return "I32";
    case 27:
      return "I64";
    case 28:
      return "F64";
    case 29:
      return "IQ1_M";
    case 34:
      return "TQ1_0";
    case 35:
      return "TQ2_0";
    case 39:
      return "MXFP4";
    default:
      return nullptr;
  }
}

template <typename Block>
Block load_block(const uint8_t* src, int64_t index) {
  Block b;
  std::memcpy(&b, src + index * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
  return b;
}

void dequant_q4_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK4_0) {
    const auto b = load_block<BlockQ4_0>(src, i);
    const float d = half_to_float(b.d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      y[j] = static_cast<float>((b.qs[j] & 0x0F) - 8) * d;
      y[j + kQK4_0 / 2] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
    }
  }
}

void dequant_q4_1(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK4_1) {
    const auto b = load_block<BlockQ4_1>(src, i);
    const float d = half_to_float(b.d);
    const float m = half_to_float(b.m);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      y[j] = static_cast<float>(b.qs[j] & 0x0F) * d + m;
      y[j + kQK4_1 / 2] = static_cast<float>(b.qs[j] >> 4) * d + m;
    }
  }
}

void dequant_q5_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK5_0) {
    const auto b = load_block<BlockQ5_0>(src, i);
    const float d = half_to_float(b.d);
    uint32_t qh;
    std::memcpy(&qh, b.qh, sizeof(qh));
    for (int j = 0; j < kQK5_0 / 2; ++j) {
      // Bit j of qh is the fifth bit of value j, bit j + 16 that of value j + 16.
      const int x0 = ((b.qs[j] & 0x0F) | static_cast<int>(((qh >> j) << 4) & 0x10)) - 16;
      const int x1 = ((b.qs[j] >> 4) | static_cast<int>((qh >> (j + 12)) & 0x10)) - 16;
      y[j] = static_cast<float>(x0) * d;
      y[j + kQK5_0 / 2] = static_cast<float>(x1) * d;
    }
  }
}

void dequant_q5_1(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK5_1) {
    const auto b = load_block<BlockQ5_1>(src, i);
    const float d = half_to_float(b.d);
    const float m = half_to_float(b.m);
    uint32_t qh;
    std::memcpy(&qh, b.qh, sizeof(qh));
    for (int j = 0; j < kQK5_1 / 2; ++j) {
      const int x0 = (b.qs[j] & 0x0F) | static_cast<int>(((qh >> j) << 4) & 0x10);
      const int x1 = (b.qs[j] >> 4) | static_cast<int>((qh >> (j + 12)) & 0x10);
      y[j] = static_cast<float>(x0) * d + m;
      y[j + kQK5_1 / 2] = static_cast<float>(x1) * d + m;
    }
  }
}

void dequant_q8_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK8_0) {
    const auto b = load_block<BlockQ8_0>(src, i);
    const float d = half_to_float(b.d);
    for (int j = 0; j < kQK8_0; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
  }
}

void dequant_q8_1(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK8_1) {
    const auto b = load_block<BlockQ8_1>(src, i);
    const float d = half_to_float(b.d);
    for (int j = 0; j < kQK8_1; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
  }
}

void dequant_q2_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ2_K>(src, i);
    const float d = half_to_float(b.d);
    const float dmin = half_to_float(b.dmin);
    const uint8_t* q = b.qs;
    int is = 0;
    // Two halves of 128 values; each byte of a 32-byte group holds four 2-bit values, one per
    // 32-value run, and every 16 values have their own scale and min.
    for (int n = 0; n < kQK_K; n += 128) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = b.scales[is++];
          const float dl = d * static_cast<float>(sc & 0x0F);
          const float ml = dmin * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l)
            *y++ = dl * static_cast<float>((q[l + 16 * half] >> shift) & 3) - ml;
        }
      }
      q += 32;
    }
  }
}

// The sixteen 6-bit Q3_K scales: low 4 bits in bytes 0..7 (low nibbles first), high 2 bits in
// bytes 8..11.
void unpack_q3_k_scales(const uint8_t* packed, int8_t* scales) {
  uint32_t aux[4];
  std::memcpy(aux, packed, kKScaleSize);
  constexpr uint32_t kmask1 = 0x03030303u;
  constexpr uint32_t kmask2 = 0x0f0f0f0fu;
  const uint32_t tmp = aux[2];
  aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
  aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
  aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
  aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
  std::memcpy(scales, aux, 16);
}

void dequant_q3_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ3_K>(src, i);
    const float d_all = half_to_float(b.d);
    int8_t scales[16];
    unpack_q3_k_scales(b.scales, scales);
    const uint8_t* q = b.qs;
    uint8_t m = 1;
    int is = 0;
    for (int n = 0; n < kQK_K; n += 128) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d_all * static_cast<float>(scales[is++] - 32);
          for (int l = 0; l < 16; ++l) {
            const int k = l + 16 * half;
            // A clear hmask bit subtracts 4: values are in [-4, 3].
            const int v = ((q[k] >> shift) & 3) - ((b.hmask[k] & m) ? 0 : 4);
            *y++ = dl * static_cast<float>(v);
          }
        }
        m = static_cast<uint8_t>(m << 1);
      }
      q += 32;
    }
  }
}

// Scale and min j (0..7) of a Q4_K / Q5_K block: 6 bits each, packed in 12 bytes.
void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

void dequant_q4_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ4_K>(src, i);
    const float d = half_to_float(b.d);
    const float dmin = half_to_float(b.dmin);
    const uint8_t* q = b.qs;
    int is = 0;
    for (int j = 0; j < kQK_K; j += 64) {
      uint8_t sc, m;
      scale_min_k4(is, b.scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      scale_min_k4(is + 1, b.scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0x0F) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
      q += 32;
      is += 2;
    }
  }
}

void dequant_q5_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ5_K>(src, i);
    const float d = half_to_float(b.d);
    const float dmin = half_to_float(b.dmin);
    const uint8_t* ql = b.qs;
    int is = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < kQK_K; j += 64) {
      uint8_t sc, m;
      scale_min_k4(is, b.scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      scale_min_k4(is + 1, b.scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l)
        *y++ = d1 * static_cast<float>((ql[l] & 0x0F) + ((b.qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l)
        *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((b.qh[l] & u2) ? 16 : 0)) - m2;
      ql += 32;
      is += 2;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

void dequant_q6_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ6_K>(src, i);
    const float d = half_to_float(b.d);
    const uint8_t* ql = b.ql;
    const uint8_t* qh = b.qh;
    const int8_t* sc = b.scales;
    for (int n = 0; n < kQK_K; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void dequant_q8_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const auto b = load_block<BlockQ8_K>(src, i);
    for (int j = 0; j < kQK_K; ++j) y[j] = b.d * static_cast<float>(b.qs[j]);
  }
}

}  // namespace

std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t raw_type) {
  for (const auto& t : kTraits)
    if (static_cast<uint32_t>(t.type) == raw_type) return t;
  return std::nullopt;
}

std::string ggml_type_name(uint32_t raw_type) {
  if (auto t = ggml_type_traits(raw_type)) return t->name;
  if (const char* other = other_type_name(raw_type)) return other;
  return fmt::format("type {}", raw_type);
}

uint64_t ggml_row_bytes(GgmlType type, int64_t n) {
  const auto t = ggml_type_traits(static_cast<uint32_t>(type));
  SKIM_ASSERT(t.has_value() && n >= 0 && n % t->block_size == 0);
  return static_cast<uint64_t>(n / t->block_size) * static_cast<uint64_t>(t->block_bytes);
}

void dequantize_row(GgmlType type, const uint8_t* src, float* dst, int64_t n) {
  const auto t = ggml_type_traits(static_cast<uint32_t>(type));
  if (!t)
    fail(ErrorKind::kBadInput, "cannot dequantize ggml type {}",
         ggml_type_name(static_cast<uint32_t>(type)));
  SKIM_ASSERT(n >= 0 && n % t->block_size == 0);
  const int64_t nb = n / t->block_size;
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = half_to_float(h);
      }
      return;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_float(h);
      }
      return;
    case GgmlType::kQ4_0:
      dequant_q4_0(src, dst, nb);
      return;
    case GgmlType::kQ4_1:
      dequant_q4_1(src, dst, nb);
      return;
    case GgmlType::kQ5_0:
      dequant_q5_0(src, dst, nb);
      return;
    case GgmlType::kQ5_1:
      dequant_q5_1(src, dst, nb);
      return;
    case GgmlType::kQ8_0:
      dequant_q8_0(src, dst, nb);
      return;
    case GgmlType::kQ8_1:
      dequant_q8_1(src, dst, nb);
      return;
    case GgmlType::kQ2_K:
      dequant_q2_k(src, dst, nb);
      return;
    case GgmlType::kQ3_K:
      dequant_q3_k(src, dst, nb);
      return;
    case GgmlType::kQ4_K:
      dequant_q4_k(src, dst, nb);
      return;
    case GgmlType::kQ5_K:
      dequant_q5_k(src, dst, nb);
      return;
    case GgmlType::kQ6_K:
      dequant_q6_k(src, dst, nb);
      return;
    case GgmlType::kQ8_K:
      dequant_q8_k(src, dst, nb);
      return;
  }
  SKIM_ASSERT(false);
}

void dequantize_rows(GgmlType type, const uint8_t* src, float* dst, int64_t rows, int64_t row_len) {
  const uint64_t row_bytes = ggml_row_bytes(type, row_len);
  // Threads only pay off past a few hundred thousand values.
  const bool parallel = rows > 1 && rows * row_len >= (int64_t{1} << 18);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t r = 0; r < rows; ++r)
    dequantize_row(type, src + static_cast<uint64_t>(r) * row_bytes, dst + r * row_len, row_len);
}

}  // namespace skim::io
