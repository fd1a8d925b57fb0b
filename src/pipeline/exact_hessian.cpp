#include "src/pipeline/exact_hessian.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>

#include "kernels/cpu/blas.h"
#include "src/core/error.h"

namespace skim::pipeline {
namespace {

// llrint (round to nearest, ties to even, the default mode) without a libm call per entry: the
// down projection's partials alone are 2.4 M entries per sample.
inline int64_t round_to_int64(double v) {
#if defined(__x86_64__)
  return _mm_cvtsd_si64(_mm_set_sd(v));
#else
  return std::llrint(v);
#endif
}

}  // namespace

double sample_bound(const float* x, int64_t seq, int64_t cols) {
  std::vector<double> energy(static_cast<size_t>(cols), 0.0);
  for (int64_t t = 0; t < seq; ++t) {
    const float* row = x + t * cols;
    for (int64_t j = 0; j < cols; ++j) energy[j] += static_cast<double>(row[j]) * row[j];
  }
  return bound_of_energies(energy);
}

double bound_of_energies(std::span<const double> energy) {
  // A NaN would vanish in the max (every comparison with it is false): infinity keeps it.
  double bound = 0.0;
  for (double e : energy) bound = std::isfinite(e) ? std::max(bound, e) : HUGE_VAL;
  return bound;
}

std::vector<double> agree_bounds(comm::Communicator& comm, const std::vector<double>& local,
                                 const std::vector<int64_t>& widths) {
  SKIM_ASSERT(local.size() == widths.size());
  const size_t n = local.size();
  std::vector<double> all(n * static_cast<size_t>(comm.size()));
  comm.all_gather(std::span<const double>(local), std::span<double>(all));
  std::vector<double> bound(n, 0.0);
  for (size_t r = 0; r < static_cast<size_t>(comm.size()); ++r)
    for (size_t g = 0; g < n; ++g) bound[g] = std::max(bound[g], all[r * n + g]);
  for (size_t g = 0; g < n; ++g)
    if (!std::isfinite(bound[g]))
      fail(ErrorKind::kNumeric, "calibration activations are not finite (hessian of width {})",
           widths[g]);
  return bound;
}

int hessian_exponent(double bound, int64_t total_samples) {
  SKIM_ASSERT(total_samples > 0 && bound >= 0.0);
  // |entry of a partial| <= its largest diagonal; fp32 rounding may add a little, hence the margin.
  const double total_bound = bound * 1.001 * static_cast<double>(total_samples);
  int exponent = 0;
  if (total_bound > 0.0) std::frexp(total_bound, &exponent);  // total_bound < 2^exponent
  return exponent - 62;
}

Tensor hessian_from_sums(const int64_t* sum, int exponent, int64_t tokens, int64_t cols) {
  const int64_t n2 = cols * cols;
  Tensor h({cols, cols});
  const double inv_tokens = 1.0 / static_cast<double>(tokens);
  float* out = h.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n2; ++i)
    out[i] = static_cast<float>(std::ldexp(static_cast<double>(sum[i]), exponent) * inv_tokens);
  return h;
}

ExactHessian::ExactHessian(int64_t cols, double bound, int64_t total_samples)
    : cols_(cols), total_samples_(total_samples) {
  SKIM_ASSERT(cols > 0);
  exponent_ = hessian_exponent(bound, total_samples);
  acc_.assign(static_cast<size_t>(cols * cols), 0);
}

void ExactHessian::add_samples(const float* x, int64_t samples, int64_t seq) {
  const int64_t n2 = cols_ * cols_;
  partial_.resize(static_cast<size_t>(n2));
  for (int64_t s = 0; s < samples; ++s) {
    std::fill(partial_.begin(), partial_.end(), 0.0f);
    kernels::syrk_ata(cols_, seq, 1.0f, x + s * seq * cols_, cols_, partial_.data(), cols_);
    // Times 2^-e is exact (a power of two, far from double's range limits): as ldexp.
    const double quanta = std::ldexp(1.0, -exponent_);
    int64_t* acc = acc_.data();
    const float* p = partial_.data();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n2; ++i) acc[i] += round_to_int64(static_cast<double>(p[i]) * quanta);
  }
}

Tensor ExactHessian::reduce(comm::Communicator& comm, int64_t seq) {
  const int64_t n2 = cols_ * cols_;
  std::vector<float>().swap(partial_);
  comm.all_reduce_sum(acc_.data(), n2);
  Tensor h = hessian_from_sums(acc_.data(), exponent_, total_samples_ * seq, cols_);
  std::vector<int64_t>().swap(acc_);
  return h;
}

}  // namespace skim::pipeline
