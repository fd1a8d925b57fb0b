#pragma once
// The Hessian of one linear input, H = (1/N) sum_t x_t x_t^T over every rank's calibration
// tokens, with bits that do not depend on how many ranks ran or how the samples were split.
//
// Floating-point sums depend on their order, so the reduction is done in integers: each sample's
// partial x_s^T x_s (one fp32 BLAS call of a fixed shape, so the same bits on any rank) is rounded
// entry by entry to a fixed-point int64 grid whose quantum 2^e is agreed by all ranks from a bound
// on the total (max over samples of the largest column energy, times the sample count, which is
// exact to compute: a max). Integer addition is associative, so the local sums and the int64
// all-reduce give the same integers for any split, and H = 2^e * sum / N exactly follows. The grid
// keeps 62 bits below the bound: finer than fp32 for every entry within 2^30 of the largest.
//
// The bound must be known before the first sample is added: a caller either holds every local
// sample, or makes one pass for the bounds and another that adds the samples one at a time
// (bounded memory; the same bits).
#include <cstdint>
#include <span>
#include <vector>

#include "comm/communicator.h"
#include "src/core/tensor.h"

namespace skim::pipeline {

// One sample's bound: its largest column energy sum_t x_tj^2, in double (fixed order); infinity
// when an activation is not finite.
double sample_bound(const float* x, int64_t seq, int64_t cols);
// The same from the column energies sum_t x_tj^2 (the device computes those).
double bound_of_energies(std::span<const double> energy);

// The max over ranks of each local bound (exact). Collective. Throws kNumeric naming the width
// of a group whose bound is not finite.
std::vector<double> agree_bounds(comm::Communicator& comm, const std::vector<double>& local,
                                 const std::vector<int64_t>& widths);

// The exponent e of the quantum 2^e for an agreed bound and the samples over every rank (shared
// with the device twin in the CUDA decoder backend, so both grids are the same).
int hessian_exponent(double bound, int64_t total_samples);

// H [cols, cols] = fp32(2^e * sum / tokens) from the reduced fixed-point sums.
Tensor hessian_from_sums(const int64_t* sum, int exponent, int64_t tokens, int64_t cols);

class ExactHessian {
 public:
  // `bound`: the agreed max of sample_bound over every rank's samples.
  ExactHessian(int64_t cols, double bound, int64_t total_samples);
  // Adds `samples` samples of x [samples * seq, cols], sample-major.
  void add_samples(const float* x, int64_t samples, int64_t seq);
  // Sums over ranks (collective) and returns H [cols, cols] fp32 on every rank; frees the sums.
  Tensor reduce(comm::Communicator& comm, int64_t seq);

 private:
  int64_t cols_;
  int64_t total_samples_;
  int exponent_ = 0;  // the quantum is 2^exponent_
  std::vector<int64_t> acc_;
  std::vector<float> partial_;
};

}  // namespace skim::pipeline
