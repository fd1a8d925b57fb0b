#pragma once
// Block layouts of the ggml quantization types (as llama.cpp's ggml-common.h defines them) and
// their exact dequantization to fp32. Exact means the same float operations in the same order as
// ggml's reference dequantizers, so the values match llama.cpp bit for bit.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "io/gguf.h"

namespace skim::io {

inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
inline constexpr int kQK5_0 = 32;
inline constexpr int kQK5_1 = 32;
inline constexpr int kQK8_0 = 32;
inline constexpr int kQK8_1 = 32;
inline constexpr int kQK_K = 256;
inline constexpr int kKScaleSize = 12;

// fp16 values are kept as raw bits; ggml_half is a uint16_t in the file.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK4_0 / 2];
};
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK4_1 / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK5_0 / 2];
};
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK5_1 / 2];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK8_0];
};
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;  // d * sum(qs); not needed to dequantize
  int8_t qs[kQK8_1];
};
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // 4-bit scale (low) and 4-bit min (high) per 16 values
  uint8_t qs[kQK_K / 4];
  uint16_t d;
  uint16_t dmin;
};
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[kKScaleSize];  // sixteen 6-bit scales
  uint16_t d;
};
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];  // eight 6-bit scales and eight 6-bit mins
  uint8_t qs[kQK_K / 2];
};
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];  // not needed to dequantize
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

struct GgmlTypeTraits {
  GgmlType type;
  const char* name;     // "Q4_K"
  int64_t block_size;   // values per block
  int64_t block_bytes;  // bytes per block
};

// Traits of a type this reader can dequantize; nullopt for any other raw value.
std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t raw_type);
// "Q4_K"; ggml's name for a type this reader cannot dequantize ("IQ2_XXS"), or "type 99".
std::string ggml_type_name(uint32_t raw_type);

// Bytes of a row of `n` values; `n` must be a multiple of the block size.
uint64_t ggml_row_bytes(GgmlType type, int64_t n);

// Dequantizes `n` values (a multiple of the block size) from `src` to `dst`. `src` needs no
// alignment.
void dequantize_row(GgmlType type, const uint8_t* src, float* dst, int64_t n);

// Dequantizes `rows` consecutive rows of `row_len` values each, in parallel for large inputs.
void dequantize_rows(GgmlType type, const uint8_t* src, float* dst, int64_t rows, int64_t row_len);

}  // namespace skim::io
