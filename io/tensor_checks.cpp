#include "io/tensor_checks.h"

#include <cmath>

#include "src/core/error.h"

namespace skim::io {

void check_loaded_tensor(const Tensor& t, const std::string& name,
                         const std::vector<int64_t>& expected_shape, const std::string& file) {
  if (t.shape() != expected_shape)
    fail(ErrorKind::kBadInput, "{}: tensor {} has shape {}, expected {}", file, name,
         t.shape_string(), shape_string(expected_shape));
  const float* v = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (!std::isfinite(v[i]))
      fail(ErrorKind::kBadInput, "{}: tensor {} has a non-finite value ({}) at index {}", file,
           name, v[i], i);
  }
}

}  // namespace skim::io
