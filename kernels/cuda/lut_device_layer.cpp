// Host side of DeviceLutLayer (C++20: it reads the host layout).
#include "kernels/gpu/lut_device_layout.h"
#include "kernels/gpu/lut_products.h"
#include "src/core/error.h"

namespace skim::kernels::gpu {

DeviceLutLayer::DeviceLutLayer(const LutDeviceLayout& layout, void* stream)
    : rows_(layout.rows), cols_(layout.cols), weight_bytes_(layout.device_bytes()) {
  if (layout.groups.size() > static_cast<size_t>(kLutMaxBits))
    fail(ErrorKind::kInternal, "DeviceLutLayer: {} bit-width groups", layout.groups.size());
  if (layout.cols > 2147483647 / 8)
    fail(ErrorKind::kBadInput, "DeviceLutLayer: {} columns overflow 32-bit offsets", layout.cols);
  for (const LutDeviceGroup& g : layout.groups) {
    if (g.rows_padded * g.words_per_row > 2147483647)
      fail(ErrorKind::kBadInput, "DeviceLutLayer: {}-bit group of {} rows overflows 32-bit offsets",
           g.bits, g.rows_padded);
    DeviceLutGroup d;
    d.bits = g.bits;
    d.rows_padded = g.rows_padded;
    d.words_per_row = g.words_per_row;
    d.words = DeviceArray<uint32_t>(g.words, stream);
    d.lut = DeviceArray<uint16_t>(g.lut, stream);
    d.row_index = DeviceArray<int32_t>(g.row_index, stream);
    groups_.push_back(std::move(d));
  }
  alpha_ = DeviceArray<uint16_t>(layout.alpha, stream);
  if (!layout.sparse.empty()) {
    sparse_row_ptr_ = DeviceArray<int64_t>(layout.sparse.row_ptr, stream);
    sparse_cols_ = DeviceArray<int32_t>(layout.sparse.cols, stream);
    sparse_values_ = DeviceArray<uint16_t>(layout.sparse.values, stream);
  }
}

}  // namespace skim::kernels::gpu
