#include <map>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/library_handles.cuh"

namespace skim::kernels::gpu {
namespace {

int current_device() {
  int device = 0;
  SKIM_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

// Handles live until the thread ends; destroying them at exit is left to the driver.
struct ThreadHandles {
  std::map<int, cublasHandle_t> blas;
  std::map<int, cusolverDnHandle_t> solver;
};

ThreadHandles& thread_handles() {
  thread_local ThreadHandles handles;
  return handles;
}

}  // namespace

cublasHandle_t cublas_handle(cudaStream_t stream) {
  auto& map = thread_handles().blas;
  const int device = current_device();
  auto it = map.find(device);
  if (it == map.end()) {
    cublasHandle_t h = nullptr;
    SKIM_CUBLAS_CHECK(cublasCreate(&h));
    // The default math mode keeps SGEMM in full fp32 (TF32 only when asked for).
    SKIM_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    it = map.emplace(device, h).first;
  }
  SKIM_CUBLAS_CHECK(cublasSetStream(it->second, stream));
  return it->second;
}

cusolverDnHandle_t cusolver_handle(cudaStream_t stream) {
  auto& map = thread_handles().solver;
  const int device = current_device();
  auto it = map.find(device);
  if (it == map.end()) {
    cusolverDnHandle_t h = nullptr;
    SKIM_CUSOLVER_CHECK(cusolverDnCreate(&h));
    it = map.emplace(device, h).first;
  }
  SKIM_CUSOLVER_CHECK(cusolverDnSetStream(it->second, stream));
  return it->second;
}

}  // namespace skim::kernels::gpu
