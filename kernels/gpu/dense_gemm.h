#pragma once
// Dense products on the GPU through cuBLAS, CUDA-free header. Pointers are DEVICE pointers; W is
// [rows, cols] row-major (PyTorch nn.Linear layout), activations [tokens, features] row-major.
// Defined in kernels/cuda/dense_gemm.cu.
#include <cstdint>

namespace skim::kernels::gpu {

enum class HalfType { kF16, kBF16 };

// y[tokens, rows] (fp32) = x16[tokens, cols] W^T with W and x16 both of `type`; fp32
// accumulation (cublasGemmEx, CUBLAS_COMPUTE_32F).
void dense_gemm(const uint16_t* w, HalfType type, int64_t rows, int64_t cols, const uint16_t* x16,
                int64_t tokens, float* y, void* stream);

// The fp16 baseline of the GEMV benchmark: y16[rows] = W x16, all fp16, fp32 accumulation
// (cublasGemmEx with n = 1, which cuBLAS serves with its GEMV kernels).
void dense_gemv_fp16(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x16,
                     uint16_t* y16, void* stream);

}  // namespace skim::kernels::gpu
