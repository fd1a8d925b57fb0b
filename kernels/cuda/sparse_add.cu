// The sparse part of a LUT layer (src/quant/sparse_part.h) added to a product: one thread per
// (token, row) walks the row's few reserved entries. Twin: quant::gemm_add.
#include <cuda_fp16.h>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/gpu/lut_products.h"

namespace skim::kernels::gpu {
namespace {

__global__ void sparse_add_kernel(const int64_t* row_ptr, const int32_t* cols, const __half* values,
                                  const float* x, int64_t rows, int64_t x_cols, int64_t batch,
                                  float* y) {
  const int64_t n = rows * batch;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = t / rows, i = t % rows;
    float acc = 0.0f;
    for (int64_t k = row_ptr[i]; k < row_ptr[i + 1]; ++k)
      acc += __half2float(values[k]) * x[b * x_cols + cols[k]];
    y[t] += acc;
  }
}

}  // namespace

void DeviceLutLayer::add_sparse(const float* x, int64_t batch, float* y, void* stream) const {
  if (sparse_row_ptr_.size() == 0 || batch <= 0) return;
  const int64_t n = rows_ * batch;
  sparse_add_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, as_stream(stream)>>>(
      sparse_row_ptr_.data(), sparse_cols_.data(),
      reinterpret_cast<const __half*>(sparse_values_.data()), x, rows_, cols_, batch, y);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
