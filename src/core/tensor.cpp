#include "src/core/tensor.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "src/core/error.h"

namespace skim {

std::optional<int64_t> checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return std::nullopt;
  return n;
}

int64_t shape_numel(const std::vector<int64_t>& shape) {
  const auto n = checked_numel(shape);
  if (!n)
    fail(ErrorKind::kInternal, "shape {} has a negative dimension or too many elements",
         shape_string(shape));
  return *n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

Tensor::Tensor(std::vector<int64_t> shape)
    : shape_(std::move(shape)), data_(static_cast<size_t>(shape_numel(shape_)), 0.0f) {}

Tensor::Tensor(std::vector<int64_t> shape, std::vector<float> values)
    : shape_(std::move(shape)), data_(std::move(values)) {
  if (shape_numel(shape_) != numel())
    fail(ErrorKind::kInternal, "tensor shape {} does not hold {} values",
         skim::shape_string(shape_), numel());
}

int64_t Tensor::dim(int i) const {
  const int n = ndim();
  const int k = i < 0 ? n + i : i;
  if (k < 0 || k >= n) fail(ErrorKind::kInternal, "dimension {} of a {}-d tensor", i, n);
  return shape_[static_cast<size_t>(k)];
}

std::span<float> Tensor::row(int64_t i) {
  const int64_t cols = shape_.back();
  return std::span<float>(data_).subspan(static_cast<size_t>(i * cols), static_cast<size_t>(cols));
}

std::span<const float> Tensor::row(int64_t i) const {
  const int64_t cols = shape_.back();
  return std::span<const float>(data_).subspan(static_cast<size_t>(i * cols),
                                               static_cast<size_t>(cols));
}

Tensor Tensor::rows(int64_t first, int64_t count) const {
  if (ndim() != 2 || first < 0 || count < 0 || first + count > shape_[0])
    fail(ErrorKind::kInternal, "rows [{}, {}) of a tensor of shape {}", first, first + count,
         shape_string());
  const int64_t cols = shape_[1];
  Tensor out({count, cols});
  std::copy_n(data_.data() + first * cols, count * cols, out.data());
  return out;
}

Tensor& Tensor::reshape(std::vector<int64_t> shape) {
  if (shape_numel(shape) != numel())
    fail(ErrorKind::kInternal, "cannot reshape {} to {}", skim::shape_string(shape_),
         skim::shape_string(shape));
  shape_ = std::move(shape);
  return *this;
}

std::string Tensor::shape_string() const {
  return skim::shape_string(shape_);
}

}  // namespace skim
