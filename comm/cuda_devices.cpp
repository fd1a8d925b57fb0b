#include "comm/cuda_devices.h"

#include "src/core/error.h"

#if SKIM_COMM_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace skim::comm {

#if SKIM_COMM_HAVE_CUDA

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: clear the sticky error, report none
    return 0;
  }
  return count;
}

void cuda_select_device(int device) {
  const cudaError_t rc = cudaSetDevice(device);
  if (rc != cudaSuccess) {
    fail(ErrorKind::kComm, "cudaSetDevice({}) failed: {}", device, cudaGetErrorString(rc));
  }
}

bool cuda_is_device_pointer(const void* pointer) {
  if (pointer == nullptr) return false;
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, pointer) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
}

#else

int cuda_device_count() {
  return 0;
}
void cuda_select_device(int device) {
  fail(ErrorKind::kUsage, "GPU {} requested but this skim-dist was built without CUDA", device);
}
bool cuda_is_device_pointer(const void*) {
  return false;
}

#endif

}  // namespace skim::comm
