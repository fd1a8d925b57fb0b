#include "src/model/linear.h"

#include <utility>
#include <vector>

#include "kernels/cpu/blas.h"
#include "src/core/error.h"

namespace skim::model {

DenseLinear::DenseLinear(std::shared_ptr<const Tensor> weight, Tensor bias)
    : weight_(std::move(weight)), bias_(std::move(bias)) {
  SKIM_ASSERT(weight_ && weight_->ndim() == 2);
  SKIM_ASSERT(bias_.empty() || bias_.numel() == weight_->dim(0));
}

DenseLinear::DenseLinear(Tensor weight, Tensor bias)
    : DenseLinear(std::make_shared<const Tensor>(std::move(weight)), std::move(bias)) {}

void Linear::forward_add(const float* x, int64_t tokens, float* y) const {
  std::vector<float> tmp(static_cast<size_t>(tokens * out_features()));
  forward(x, tokens, tmp.data());
  const int64_t n = tokens * out_features();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += tmp[static_cast<size_t>(i)];
}

void DenseLinear::forward(const float* x, int64_t tokens, float* y) const {
  gemm(x, tokens, y, false);
}

void DenseLinear::forward_add(const float* x, int64_t tokens, float* y) const {
  gemm(x, tokens, y, true);
}

void DenseLinear::gemm(const float* x, int64_t tokens, float* y, bool accumulate) const {
  const int64_t out = out_features();
  const int64_t in = in_features();
  float beta = accumulate ? 1.0f : 0.0f;
  if (!bias_.empty()) {
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t o = 0; o < out; ++o) {
        float& yo = y[t * out + o];
        yo = (accumulate ? yo : 0.0f) + bias_.data()[o];
      }
    beta = 1.0f;
  }
  if (tokens == 1)
    kernels::gemv(out, in, 1.0f, weight_->data(), in, x, beta, y);
  else
    kernels::gemm(false, true, tokens, out, in, 1.0f, x, in, weight_->data(), in, beta, y, out);
}

}  // namespace skim::model
