#pragma once
// Products with a packed LUT layer on the GPU, straight from the packed labels (no dequantized
// copy of W): a GEMV for one token (decode) and a GEMM for a batch (prefill). CUDA-free header;
// x and y are DEVICE pointers, fp32, row-major [tokens, features]; `stream` is a cudaStream_t.
// Twins: quant::gemv / quant::gemm on the quant::PackedLutLayer the layout came from.
// Defined in kernels/cuda/lut_device_layer.cpp and lut_{gemv,gemm}.cu. Design: docs/GPU.md.
#include <cstdint>
#include <vector>

#include "kernels/gpu/device_memory.h"
#include "kernels/gpu/lut_geometry.h"

namespace skim::kernels::gpu {

struct LutDeviceLayout;  // kernels/gpu/lut_device_layout.h

// One bit-width group of a layer, resident on the device (see LutDeviceGroup).
struct DeviceLutGroup {
  int bits = 0;
  int64_t rows_padded = 0;
  int64_t words_per_row = 0;
  DeviceArray<uint32_t> words;
  DeviceArray<uint16_t> lut;  // fp16
  DeviceArray<int32_t> row_index;
};

class DeviceLutLayer {
 public:
  // Uploads the layout (asynchronously on `stream`; the host layout may go away on return).
  explicit DeviceLutLayer(const LutDeviceLayout& layout, void* stream = nullptr);

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  // Bytes one product reads from device memory for the weights (words, LUTs, row indices, alpha).
  int64_t weight_bytes() const { return weight_bytes_; }

  // y[rows] = W^ x for x [cols] (the LUT part, then the sparse part added).
  void gemv(const float* x, float* y, void* stream) const;
  // y[batch, rows] = X[batch, cols] W^T; batch 1 takes the GEMV.
  void gemm(const float* x, int64_t batch, float* y, void* stream) const;

  const std::vector<DeviceLutGroup>& groups() const { return groups_; }
  const uint16_t* alpha() const { return alpha_.data(); }

 private:
  // y[b][i] += the sparse part's row i times x[b] (kernels/cuda/sparse_add.cu); no-op without one.
  void add_sparse(const float* x, int64_t batch, float* y, void* stream) const;

  int64_t rows_ = 0;
  int64_t cols_ = 0;
  int64_t weight_bytes_ = 0;
  std::vector<DeviceLutGroup> groups_;
  DeviceArray<uint16_t> alpha_;          // fp16 [cols]
  DeviceArray<int64_t> sparse_row_ptr_;  // [rows + 1], empty without a sparse part
  DeviceArray<int32_t> sparse_cols_;
  DeviceArray<uint16_t> sparse_values_;  // fp16
};

}  // namespace skim::kernels::gpu
