#include "kernels/cuda/cuda_check.cuh"
#include "kernels/gpu/device_memory.h"

namespace skim::kernels::gpu {

void* device_malloc(std::size_t bytes) {
  void* p = nullptr;
  SKIM_CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}

void device_free(void* p) noexcept {
  if (p != nullptr) cudaFree(p);  // a failing free cannot be reported from a destructor
}

void copy_to_device(void* dst, const void* src, std::size_t bytes, void* stream) {
  SKIM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, as_stream(stream)));
}

void copy_to_host(void* dst, const void* src, std::size_t bytes, void* stream) {
  SKIM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, as_stream(stream)));
  SKIM_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream)));
}

void copy_on_device(void* dst, const void* src, std::size_t bytes, void* stream) {
  SKIM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, as_stream(stream)));
}

void device_memset_zero(void* p, std::size_t bytes, void* stream) {
  SKIM_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, as_stream(stream)));
}

void stream_synchronize(void* stream) {
  SKIM_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream)));
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" status
    return 0;
  }
  return n;
}

}  // namespace skim::kernels::gpu
