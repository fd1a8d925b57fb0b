// Round-to-nearest on the GPU (twin: quant::rtn_quantize): one thread block per (row, group)
// finds the group's range, derives its uniform grid as the twin does and writes the codes.
#include <cub/block/block_reduce.cuh>

#include <algorithm>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/uniform_grid.cuh"
#include "kernels/gpu/quant_kernels.h"

namespace skim::kernels::gpu {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads)
    rtn_groups(const float* w, int64_t cols, int64_t width, int64_t groups, int bits,
               uint8_t* codes, uint16_t* scale, uint16_t* zero) {
  using Reduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  __shared__ UniformGrid grid;
  const int64_t row = blockIdx.x / groups, g = blockIdx.x % groups;
  const int64_t begin = g * width, end = min(cols, begin + width);
  const float* wr = w + row * cols;
  float lo = wr[begin], hi = wr[begin];
  for (int64_t j = begin + threadIdx.x; j < end; j += kThreads) {
    lo = fminf(lo, wr[j]);
    hi = fmaxf(hi, wr[j]);
  }
  const float mn = Reduce(tmp).Reduce(lo, MinOp());
  __syncthreads();
  const float mx = Reduce(tmp).Reduce(hi, MaxOp());
  if (threadIdx.x == 0) {
    grid = uniform_params_device(mn, mx, bits);
    scale[blockIdx.x] = grid.scale_h;
    zero[blockIdx.x] = grid.zero_h;
  }
  __syncthreads();
  for (int64_t j = begin + threadIdx.x; j < end; j += kThreads)
    codes[row * cols + j] = code_of(wr[j], grid, bits);
}

}  // namespace

void rtn_quantize(const float* w, int64_t rows, int64_t cols, int bits, int64_t group_size,
                  uint8_t* codes, uint16_t* scale, uint16_t* zero, void* stream) {
  if (bits < 2 || bits > 8) throw_invalid_argument("rtn_quantize", "bits outside [2, 8]");
  if (rows <= 0 || cols <= 0 || group_size < 0)
    throw_invalid_argument("rtn_quantize", "empty matrix or negative group size");
  const int64_t width = group_size == 0 || group_size >= cols ? cols : group_size;
  const int64_t groups = (cols + width - 1) / width;
  if (rows * groups > int64_t{0x7fffffff})
    throw_invalid_argument("rtn_quantize", "more than 2^31 - 1 groups");
  rtn_groups<<<static_cast<unsigned>(rows * groups), kThreads, 0, as_stream(stream)>>>(
      w, cols, width, groups, bits, codes, scale, zero);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
