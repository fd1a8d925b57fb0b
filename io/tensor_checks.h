#pragma once
// Checks every ModelSource applies to a tensor it hands out.
#include <string>
#include <vector>

#include "src/core/tensor.h"

namespace skim::io {

// Throws kBadInput naming the tensor and file if the shape differs from `expected_shape` or a
// value is NaN or Inf (with the index of the first one).
void check_loaded_tensor(const Tensor& t, const std::string& name,
                         const std::vector<int64_t>& expected_shape, const std::string& file);

}  // namespace skim::io
