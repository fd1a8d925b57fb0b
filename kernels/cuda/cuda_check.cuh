#pragma once
// Status checks for CUDA runtime, cuBLAS and cuSOLVER calls, and an owning device buffer.
// A failed call throws skim::Error (kind kNumeric) naming the call, its status and the source
// line; nothing here aborts. Include only from .cu files: the CPU code never sees CUDA types.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace skim::kernels::gpu {

// Defined in cuda_check.cpp (host C++20, where fmt and skim::fail live).
[[noreturn]] void throw_device_failure(const char* library, const char* call, int status,
                                       const char* detail, const char* file, int line);
// A launcher called with arguments it cannot serve (kInternal: the caller has a bug).
[[noreturn]] void throw_invalid_argument(const char* op, const char* detail);
// A computation that failed on its data, e.g. a matrix that is not positive definite (kNumeric).
[[noreturn]] void throw_numeric_failure(const char* op, const char* detail, long long value);

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess)
    throw_device_failure("CUDA", call, static_cast<int>(status), cudaGetErrorString(status), file,
                         line);
}

inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw_device_failure("cuBLAS", call, static_cast<int>(status), cublasGetStatusString(status),
                         file, line);
}

inline void check_cusolver(cusolverStatus_t status, const char* call, const char* file, int line) {
  if (status != CUSOLVER_STATUS_SUCCESS)
    throw_device_failure("cuSOLVER", call, static_cast<int>(status), "cusolver status", file, line);
}

// The stream handed through the CUDA-free launcher headers as void*.
inline cudaStream_t as_stream(void* stream) {
  return static_cast<cudaStream_t>(stream);
}

// Owning, move-only device allocation of n elements of T (cudaMalloc / cudaFree).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) { resize(n); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }

  // Reallocates (contents lost) when n differs from the current size.
  void resize(std::size_t n) {
    if (n == size_) return;
    release();
    if (n > 0) {
      void* p = nullptr;
      check_cuda(cudaMalloc(&p, n * sizeof(T)), "cudaMalloc", __FILE__, __LINE__);
      data_ = static_cast<T*>(p);
    }
    size_ = n;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return size_; }
  std::size_t bytes() const { return size_ * sizeof(T); }

  void upload(const T* host, std::size_t n, cudaStream_t stream) {
    resize(n);
    if (n > 0)
      check_cuda(cudaMemcpyAsync(data_, host, n * sizeof(T), cudaMemcpyHostToDevice, stream),
                 "cudaMemcpyAsync(H2D)", __FILE__, __LINE__);
  }
  // Copies the first n elements back and waits for the stream.
  void download(T* host, std::size_t n, cudaStream_t stream) const {
    if (n > 0)
      check_cuda(cudaMemcpyAsync(host, data_, n * sizeof(T), cudaMemcpyDeviceToHost, stream),
                 "cudaMemcpyAsync(D2H)", __FILE__, __LINE__);
    check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize", __FILE__, __LINE__);
  }
  void zero(cudaStream_t stream) {
    if (size_ > 0)
      check_cuda(cudaMemsetAsync(data_, 0, bytes(), stream), "cudaMemsetAsync", __FILE__, __LINE__);
  }

 private:
  void release() noexcept {
    if (data_ != nullptr) cudaFree(data_);  // a failing free cannot be reported from here
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace skim::kernels::gpu

#define SKIM_CUDA_CHECK(expr) ::skim::kernels::gpu::check_cuda((expr), #expr, __FILE__, __LINE__)
#define SKIM_CUBLAS_CHECK(expr) \
  ::skim::kernels::gpu::check_cublas((expr), #expr, __FILE__, __LINE__)
#define SKIM_CUSOLVER_CHECK(expr) \
  ::skim::kernels::gpu::check_cusolver((expr), #expr, __FILE__, __LINE__)
// After a <<<...>>> launch: reports a bad configuration at the launch site.
#define SKIM_CUDA_CHECK_LAUNCH() SKIM_CUDA_CHECK(cudaGetLastError())
