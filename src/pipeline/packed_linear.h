#pragma once
// model::Linear over a quantized layer in its packed form: products straight from the packed
// labels / codes (quant::gemv for one token, quant::gemm for more), never a dense copy of W^.
// An optional fp32 bias [rows] (qwen2's q/k/v) is added after the product.
//
// QdecLinear adds QDEC's correction to any linear: y += R^[:, S] x_S per token, S the `channels`
// inputs of largest magnitude (src/quant/residual.h).
#include <cstdint>
#include <memory>

#include "src/core/tensor.h"
#include "src/model/linear.h"
#include "src/quant/packed_layer.h"
#include "src/quant/residual.h"

namespace skim::pipeline {

// One class for every packed kind: quant::gemv / quant::gemm are overloaded on the layer type.
template <typename Layer>
class PackedLinear final : public model::Linear {
 public:
  explicit PackedLinear(Layer layer, Tensor bias = {});
  int64_t out_features() const override { return layer_.rows; }
  int64_t in_features() const override { return layer_.cols; }
  void forward(const float* x, int64_t tokens, float* y) const override;
  const Layer& layer() const { return layer_; }
  const Tensor& bias() const { return bias_; }

 private:
  Layer layer_;
  Tensor bias_;
};
using PackedLutLinear = PackedLinear<quant::PackedLutLayer>;
using PackedUniformLinear = PackedLinear<quant::PackedUniformLayer>;
using PackedColumnLutLinear = PackedLinear<quant::PackedColumnLutLayer>;

class QdecLinear final : public model::Linear {
 public:
  // The residual's shape must be the linear's; channels in 1..in_features.
  QdecLinear(std::unique_ptr<model::Linear> linear, quant::ResidualLayer residual,
             int64_t channels);
  int64_t out_features() const override { return linear_->out_features(); }
  int64_t in_features() const override { return linear_->in_features(); }
  void forward(const float* x, int64_t tokens, float* y) const override;

  const model::Linear& linear() const { return *linear_; }
  const quant::ResidualCorrector& corrector() const { return residual_; }
  int64_t channels() const { return channels_; }

 private:
  std::unique_ptr<model::Linear> linear_;
  quant::ResidualCorrector residual_;
  int64_t channels_;
};

}  // namespace skim::pipeline
