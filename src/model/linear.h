#pragma once
// A linear layer y = W x (+ b) applied to a batch of tokens. Dense fp32 today; the quantized
// packed layers implement the same interface so the decoder runs either unchanged.
#include <cstdint>
#include <memory>

#include "src/core/tensor.h"

namespace skim::model {

class Linear {
 public:
  virtual ~Linear() = default;
  virtual int64_t out_features() const = 0;
  virtual int64_t in_features() const = 0;
  // y[tokens, out_features] = x[tokens, in_features] W^T (+ b); x and y row-major, not aliased.
  virtual void forward(const float* x, int64_t tokens, float* y) const = 0;
  // y += x W^T (+ b): the residual connections. The default goes through a temporary.
  virtual void forward_add(const float* x, int64_t tokens, float* y) const;
};

// fp32 weight [out, in] (PyTorch layout) and an optional bias [out]. The weight is shared so a
// tied LM head reuses the embedding table without a copy.
class DenseLinear final : public Linear {
 public:
  explicit DenseLinear(std::shared_ptr<const Tensor> weight, Tensor bias = {});
  explicit DenseLinear(Tensor weight, Tensor bias = {});

  int64_t out_features() const override { return weight_->dim(0); }
  int64_t in_features() const override { return weight_->dim(1); }
  void forward(const float* x, int64_t tokens, float* y) const override;
  void forward_add(const float* x, int64_t tokens, float* y) const override;

  const Tensor& weight() const { return *weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  void gemm(const float* x, int64_t tokens, float* y, bool accumulate) const;

  std::shared_ptr<const Tensor> weight_;
  Tensor bias_;
};

}  // namespace skim::model
