#pragma once
// One cuBLAS and one cuSOLVER handle per host thread and device, created on first use (creating
// a handle per call costs milliseconds). The handle is bound to `stream` before it is returned.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

namespace skim::kernels::gpu {

cublasHandle_t cublas_handle(cudaStream_t stream);
cusolverDnHandle_t cusolver_handle(cudaStream_t stream);

}  // namespace skim::kernels::gpu
