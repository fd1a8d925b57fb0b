#pragma once
// One packed row of B-bit labels read through the row's lookup table: dotted with x,
// sum_j table[label j] * x[j] (lut_dot), or decoded, out[j] = table[label j] (lut_decode). The bit
// order is the packed format's (docs/FORMAT.md): value j at bit j*B of the row, least significant
// bit first, the row starting on a byte boundary.
//
// lut_dot picks the AVX2 kernel when the processor has AVX2 and FMA (checked once, at run time,
// so one binary runs everywhere; F16C converts fp16 tables) and the scalar twin otherwise. Both
// keep eight lane sums and reduce them in one fixed order, so a row's result depends on the row
// alone, never on the thread count; the two differ by rounding (the AVX2 kernel fuses multiply and
// add).
#include <cstdint>

namespace skim::kernels {

float lut_dot(const uint8_t* packed, int64_t cols, int bits, const float* table, const float* x);
// Same with the table in fp16 (a packed LUT row as stored), converted exactly to fp32 first.
float lut_dot(const uint8_t* packed, int64_t cols, int bits, const uint16_t* table, const float* x);

// out[j] = table[label j] for the row's cols labels (scalar: decoding feeds a GEMM, which
// dominates).
void lut_decode(const uint8_t* packed, int64_t cols, int bits, const float* table, float* out);

// The two implementations of lut_dot, for the test that compares them.
float lut_dot_scalar(const uint8_t* packed, int64_t cols, int bits, const float* table,
                     const float* x);
float lut_dot_avx2(const uint8_t* packed, int64_t cols, int bits, const float* table,
                   const float* x);
bool cpu_has_avx2_fma_f16c();

}  // namespace skim::kernels
