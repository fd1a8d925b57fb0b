#pragma once
// Shared pieces of the error-table and scale-step drivers.
#include <cstdint>

#include "kernels/cuda/cuda_check.cuh"

namespace skim::kernels::gpu {

// G = D H (row-major D [rows, cols], H [cols, cols]) with one SGEMM.
void gemm_rows_by_h(const float* d, int64_t rows, int64_t cols, const float* h, float* g,
                    cudaStream_t stream);
// out[i * out_stride] = d_i H d_i^T; g [rows, cols] is scratch.
void quadratic_forms_strided(const float* d, int64_t rows, int64_t cols, const float* h, float* g,
                             double* out, int64_t out_stride, cudaStream_t stream);

}  // namespace skim::kernels::gpu
