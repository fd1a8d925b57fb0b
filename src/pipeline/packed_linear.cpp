#include "src/pipeline/packed_linear.h"

#include <utility>

#include "src/core/error.h"

namespace skim::pipeline {

namespace {

void check_bias(const Tensor& bias, int64_t rows) {
  SKIM_ASSERT(bias.numel() == 0 || bias.numel() == rows);
}

void add_bias(const Tensor& bias, int64_t tokens, int64_t rows, float* y) {
  if (bias.numel() == 0) return;
  const float* b = bias.data();
#pragma omp parallel for schedule(static) if (tokens > 1)
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < rows; ++i) y[t * rows + i] += b[i];
}

}  // namespace

template <typename Layer>
PackedLinear<Layer>::PackedLinear(Layer layer, Tensor bias)
    : layer_(std::move(layer)), bias_(std::move(bias)) {
  SKIM_ASSERT(layer_.rows > 0 && layer_.cols > 0);
  check_bias(bias_, layer_.rows);
}

template <typename Layer>
void PackedLinear<Layer>::forward(const float* x, int64_t tokens, float* y) const {
  if (tokens <= 0) return;
  if (tokens == 1)
    quant::gemv(layer_, x, y);
  else
    quant::gemm(layer_, x, tokens, y);
  add_bias(bias_, tokens, layer_.rows, y);
}

template class PackedLinear<quant::PackedLutLayer>;
template class PackedLinear<quant::PackedUniformLayer>;
template class PackedLinear<quant::PackedColumnLutLayer>;

QdecLinear::QdecLinear(std::unique_ptr<model::Linear> linear, quant::ResidualLayer residual,
                       int64_t channels)
    : linear_(std::move(linear)), residual_(std::move(residual)), channels_(channels) {
  SKIM_ASSERT(linear_ != nullptr && residual_.residual().rows == linear_->out_features() &&
              residual_.residual().cols == linear_->in_features());
  SKIM_ASSERT(channels_ >= 1 && channels_ <= residual_.residual().cols);
}

void QdecLinear::forward(const float* x, int64_t tokens, float* y) const {
  linear_->forward(x, tokens, y);
  residual_.apply(x, tokens, channels_, y);
}

}  // namespace skim::pipeline
