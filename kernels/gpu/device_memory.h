#pragma once
// Device memory for host code that must not see CUDA types (tests, benchmarks, the decoder's
// owners): an owning typed array and the few copies they need. Defined in
// kernels/cuda/device_memory.cu; a failed call throws skim::Error (kNumeric).
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace skim::kernels::gpu {

void* device_malloc(std::size_t bytes);
void device_free(void* p) noexcept;
void copy_to_device(void* dst, const void* src, std::size_t bytes, void* stream);
void copy_to_host(void* dst, const void* src, std::size_t bytes, void* stream);  // then waits
void copy_on_device(void* dst, const void* src, std::size_t bytes, void* stream);
void device_memset_zero(void* p, std::size_t bytes, void* stream);
void stream_synchronize(void* stream);
int device_count();  // 0 when there is no usable device (never throws)

// An owning device array of n elements of T.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(std::size_t n) : n_(n) {
    if (n > 0) p_ = static_cast<T*>(device_malloc(n * sizeof(T)));
  }
  DeviceArray(const T* host, std::size_t n, void* stream = nullptr) : DeviceArray(n) {
    if (n_ > 0) copy_to_device(p_, host, n_ * sizeof(T), stream);
  }
  explicit DeviceArray(const std::vector<T>& host, void* stream = nullptr)
      : DeviceArray(host.data(), host.size(), stream) {}
  ~DeviceArray() { device_free(p_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      device_free(p_);
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }

  T* data() { return p_; }
  const T* data() const { return p_; }
  std::size_t size() const { return n_; }
  std::size_t bytes() const { return n_ * sizeof(T); }

  std::vector<T> to_host(void* stream = nullptr) const {
    std::vector<T> h(n_);
    if (n_ > 0) copy_to_host(h.data(), p_, bytes(), stream);
    return h;
  }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

}  // namespace skim::kernels::gpu
