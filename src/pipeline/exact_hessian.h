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
#include <cstdint>

#include "comm/communicator.h"
#include "src/core/tensor.h"

namespace skim::pipeline {

// x: this rank's activations [local_samples * seq, cols], sample-major. Collective: every rank
// calls it, also with local_samples == 0. Returns H [cols, cols] fp32 on every rank.
Tensor reduce_hessian(comm::Communicator& comm, const float* x, int64_t local_samples, int64_t seq,
                      int64_t cols, int64_t total_samples);

}  // namespace skim::pipeline
