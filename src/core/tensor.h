#pragma once
// A host tensor of fp32 values, row-major, owning its storage. The CPU path computes in fp32;
// file formats convert to and from it at the io/ boundary.
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace skim {

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled tensor of the given shape.
  explicit Tensor(std::vector<int64_t> shape);
  Tensor(std::vector<int64_t> shape, std::vector<float> values);

  const std::vector<int64_t>& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const { return static_cast<int64_t>(data_.size()); }
  bool empty() const { return data_.empty(); }

  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  std::span<float> values() { return data_; }
  std::span<const float> values() const { return data_; }

  // Row i of a 2-D tensor (or of the tensor viewed as [numel / dim(-1), dim(-1)]).
  std::span<float> row(int64_t i);
  std::span<const float> row(int64_t i) const;
  // Rows [first, first + count) of a 2-D tensor, copied.
  Tensor rows(int64_t first, int64_t count) const;
  float& at(int64_t i, int64_t j) { return data_[static_cast<size_t>(i * shape_.back() + j)]; }
  float at(int64_t i, int64_t j) const { return data_[static_cast<size_t>(i * shape_.back() + j)]; }

  // Same values, new shape with the same element count.
  Tensor& reshape(std::vector<int64_t> shape);

  std::string shape_string() const;  // "[576, 1536]"

 private:
  std::vector<int64_t> shape_;
  std::vector<float> data_;
};

int64_t shape_numel(const std::vector<int64_t>& shape);
// The element count, or nullopt for a negative dimension or a count past int64 (a shape read from
// a file is checked with this before use).
std::optional<int64_t> checked_numel(const std::vector<int64_t>& shape);
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace skim
