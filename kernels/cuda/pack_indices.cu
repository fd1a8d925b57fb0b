// Packing of label / code rows into the little-endian bit stream of src/quant/packed_layer.h:
// value j of a b-bit row occupies stream bits [j b, j b + b). One thread per output byte
// gathers the values overlapping it, so no two threads write the same byte.
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/gpu/quant_kernels.h"

namespace skim::kernels::gpu {
namespace {

constexpr int kThreads = 256;

__global__ void pack_rows(const uint8_t* values, const uint8_t* bits, const int64_t* out_offset,
                          int64_t cols, uint8_t* out) {
  const int64_t row = blockIdx.x;
  const int b = bits[row];
  const uint32_t mask = (1u << b) - 1u;
  const int64_t bytes = (cols * b + 7) / 8;
  const uint8_t* v = values + row * cols;
  uint8_t* o = out + out_offset[row];
  for (int64_t t = threadIdx.x; t < bytes; t += kThreads) {
    const int64_t first_bit = t * 8;
    uint32_t byte = 0;
    for (int64_t j = first_bit / b; j < cols && j * b < first_bit + 8; ++j) {
      const uint32_t x = v[j] & mask;
      const int64_t shift = j * b - first_bit;
      byte |= shift >= 0 ? x << shift : x >> (-shift);
    }
    o[t] = static_cast<uint8_t>(byte & 0xffu);
  }
}

}  // namespace

void pack_indices(const uint8_t* values, const uint8_t* bits, const int64_t* out_offset,
                  int64_t rows, int64_t cols, uint8_t* out, void* stream) {
  if (rows <= 0 || cols <= 0) return;
  pack_rows<<<static_cast<unsigned>(rows), kThreads, 0, as_stream(stream)>>>(values, bits,
                                                                             out_offset, cols, out);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
