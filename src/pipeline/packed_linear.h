#pragma once
// model::Linear over a quantized layer in its packed form: products straight from the packed
// labels / codes (quant::gemv for one token, quant::gemm for more), never a dense copy of W^.
// An optional fp32 bias [rows] (qwen2's q/k/v) is added after the product.
#include <cstdint>

#include "src/core/tensor.h"
#include "src/model/linear.h"
#include "src/quant/packed_layer.h"

namespace skim::pipeline {

class PackedLutLinear final : public model::Linear {
 public:
  explicit PackedLutLinear(quant::PackedLutLayer layer, Tensor bias = {});
  int64_t out_features() const override { return layer_.rows; }
  int64_t in_features() const override { return layer_.cols; }
  void forward(const float* x, int64_t tokens, float* y) const override;
  const quant::PackedLutLayer& layer() const { return layer_; }

 private:
  quant::PackedLutLayer layer_;
  Tensor bias_;
};

class PackedUniformLinear final : public model::Linear {
 public:
  explicit PackedUniformLinear(quant::PackedUniformLayer layer, Tensor bias = {});
  int64_t out_features() const override { return layer_.rows; }
  int64_t in_features() const override { return layer_.cols; }
  void forward(const float* x, int64_t tokens, float* y) const override;
  const quant::PackedUniformLayer& layer() const { return layer_; }

 private:
  quant::PackedUniformLayer layer_;
  Tensor bias_;
};

}  // namespace skim::pipeline
