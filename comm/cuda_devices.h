#pragma once
// CUDA device queries that the runtime needs to place ranks on GPUs, without CUDA types in the
// header. In a build without CUDA there are no devices.
namespace skim::comm {

// Visible CUDA devices; 0 without CUDA, without a driver or without a GPU.
int cuda_device_count();
// cudaSetDevice; throws kComm naming the device on failure.
void cuda_select_device(int device);
// True if `pointer` is device (or managed) memory; false for host memory or without CUDA.
bool cuda_is_device_pointer(const void* pointer);

}  // namespace skim::comm
