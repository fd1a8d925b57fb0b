#include "src/quant/hessian.h"

#include "kernels/cpu/blas.h"
#include "src/core/error.h"

namespace skim::quant {

HessianAccumulator::HessianAccumulator(int64_t cols) : cols_(cols) {
  if (cols <= 0) fail(ErrorKind::kInternal, "HessianAccumulator: cols = {}", cols);
  sum_.assign(static_cast<size_t>(cols * cols), 0.0);
}

void HessianAccumulator::add(const float* x, int64_t tokens) {
  if (tokens <= 0) return;
  batch_.assign(static_cast<size_t>(cols_ * cols_), 0.0f);
  kernels::syrk_ata(cols_, tokens, 1.0f, x, cols_, batch_.data(), cols_);
  for (size_t k = 0; k < sum_.size(); ++k) sum_[k] += batch_[k];
  tokens_ += tokens;
}

void HessianAccumulator::add(const Tensor& x) {
  if (x.ndim() < 1 || x.dim(-1) != cols_)
    fail(ErrorKind::kInternal, "HessianAccumulator: batch {} for {} columns", x.shape_string(),
         cols_);
  add(x.data(), x.numel() / cols_);
}

void HessianAccumulator::merge(const HessianAccumulator& other) {
  if (other.cols_ != cols_)
    fail(ErrorKind::kInternal, "HessianAccumulator: merging {} columns into {}", other.cols_,
         cols_);
  for (size_t k = 0; k < sum_.size(); ++k) sum_[k] += other.sum_[k];
  tokens_ += other.tokens_;
}

Tensor HessianAccumulator::mean() const {
  if (tokens_ == 0) fail(ErrorKind::kBadInput, "Hessian: no calibration token reached the layer");
  Tensor h({cols_, cols_});
  const double inv = 1.0 / static_cast<double>(tokens_);
  for (size_t k = 0; k < sum_.size(); ++k) h.data()[k] = static_cast<float>(sum_[k] * inv);
  return h;
}

double damp_hessian(Tensor& h, double fraction) {
  const int64_t n = h.dim(0);
  if (h.ndim() != 2 || h.dim(1) != n)
    fail(ErrorKind::kInternal, "damp_hessian: H {} is not square", h.shape_string());
  double diag = 0.0;
  for (int64_t j = 0; j < n; ++j) diag += h.at(j, j);
  double add = fraction * diag / static_cast<double>(n);
  if (!(add > 0.0)) add = 1.0;
  for (int64_t j = 0; j < n; ++j) h.at(j, j) = static_cast<float>(h.at(j, j) + add);
  return add;
}

std::vector<int64_t> dead_columns(const Tensor& h) {
  std::vector<int64_t> dead;
  for (int64_t j = 0; j < h.dim(0); ++j)
    if (h.at(j, j) == 0.0f) dead.push_back(j);
  return dead;
}

}  // namespace skim::quant
