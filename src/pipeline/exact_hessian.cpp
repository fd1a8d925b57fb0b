#include "src/pipeline/exact_hessian.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/blas.h"
#include "src/core/error.h"

namespace skim::pipeline {
namespace {

// Largest column energy sum_t x_tj^2 of one sample, in double (fixed order: the same bits on
// any rank).
double max_column_energy(const float* x, int64_t seq, int64_t cols) {
  std::vector<double> energy(static_cast<size_t>(cols), 0.0);
  for (int64_t t = 0; t < seq; ++t) {
    const float* row = x + t * cols;
    for (int64_t j = 0; j < cols; ++j) energy[j] += static_cast<double>(row[j]) * row[j];
  }
  return energy.empty() ? 0.0 : *std::max_element(energy.begin(), energy.end());
}

}  // namespace

Tensor reduce_hessian(comm::Communicator& comm, const float* x, int64_t local_samples, int64_t seq,
                      int64_t cols, int64_t total_samples) {
  SKIM_ASSERT(total_samples > 0 && seq > 0 && cols > 0);
  const int64_t sample_elems = seq * cols;

  double local_bound = 0.0;
  for (int64_t s = 0; s < local_samples; ++s)
    local_bound = std::max(local_bound, max_column_energy(x + s * sample_elems, seq, cols));
  double bound = 0.0;
  for (double b : comm.all_gather_value(local_bound)) bound = std::max(bound, b);
  if (!std::isfinite(bound))
    fail(ErrorKind::kNumeric, "calibration activations are not finite (hessian of width {})", cols);

  // |entry of a partial| <= its largest diagonal; fp32 rounding may add a little, hence the margin.
  const double total_bound = bound * 1.001 * static_cast<double>(total_samples);
  int exponent = 0;
  if (total_bound > 0.0) std::frexp(total_bound, &exponent);  // total_bound < 2^exponent
  const int e = exponent - 62;

  const int64_t n2 = cols * cols;
  std::vector<int64_t> acc(static_cast<size_t>(n2), 0);
  std::vector<float> partial(static_cast<size_t>(n2));
  for (int64_t s = 0; s < local_samples; ++s) {
    std::fill(partial.begin(), partial.end(), 0.0f);
    kernels::syrk_ata(cols, seq, 1.0f, x + s * sample_elems, cols, partial.data(), cols);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n2; ++i)
      acc[i] += std::llrint(std::ldexp(static_cast<double>(partial[i]), -e));
  }
  comm.all_reduce_sum(acc.data(), n2);

  Tensor h({cols, cols});
  const double inv_tokens = 1.0 / static_cast<double>(total_samples * seq);
  float* out = h.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n2; ++i)
    out[i] = static_cast<float>(std::ldexp(static_cast<double>(acc[i]), e) * inv_tokens);
  return h;
}

}  // namespace skim::pipeline
