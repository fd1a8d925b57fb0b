#pragma once
// A sum over ranks whose bits do not depend on the number of ranks.
//
// Floating-point addition is not associative, so all_reduce_sum gives different bits for
// different rank counts. ordered_sum fixes the order instead: the data is cut into G groups
// (e.g. 4 calibration samples each) whose partial sums are computed the same way wherever they
// run; rank r holds a contiguous block of groups (rank 0 the first block, and so on), and the
// result is ((0 + p_0) + p_1) + ... + p_{G-1}, added in global group order by a chain
// (rank r adds its groups to what rank r-1 sent, then sends on; the last rank broadcasts).
// The chain is pipelined in pieces, so its time is close to one transfer of the buffer.
#include <cstdint>

#include "comm/communicator.h"

namespace skim::comm {

// The contiguous block [first, first + count) of `total` groups that `rank` of `size` owns:
// the first total % size ranks get one extra group.
struct GroupBlock {
  int64_t first = 0;
  int64_t count = 0;
};
GroupBlock group_block(int64_t total_groups, int rank, int size);

// `partials` holds this rank's `local_groups` partials of `count` elements each, back to back,
// in global group order; ranks hold consecutive blocks in rank order. Every rank gets the sum in
// `out` (count elements; it may not alias partials). Host buffers only. Collective.
void ordered_sum(Communicator& comm, const float* partials, int64_t local_groups, int64_t count,
                 float* out);
void ordered_sum(Communicator& comm, const double* partials, int64_t local_groups, int64_t count,
                 double* out);

}  // namespace skim::comm
