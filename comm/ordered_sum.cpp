#include "comm/ordered_sum.h"

#include <algorithm>

#include "src/core/error.h"

namespace skim::comm {

GroupBlock group_block(int64_t total_groups, int rank, int size) {
  if (total_groups < 0 || size < 1 || rank < 0 || rank >= size) {
    fail(ErrorKind::kInternal, "group_block: {} groups, rank {} of {}", total_groups, rank, size);
  }
  const int64_t base = total_groups / size;
  const int64_t extra = total_groups % size;
  GroupBlock block;
  block.count = base + (rank < extra ? 1 : 0);
  block.first = rank * base + std::min<int64_t>(rank, extra);
  return block;
}

namespace {

// Elements per chain message: big enough to amortise latency, small enough to pipeline.
constexpr int64_t kPieceElements = int64_t{1} << 20;

template <typename T>
void chain_sum(Communicator& comm, const T* partials, int64_t local_groups, int64_t count, T* out) {
  if (local_groups < 0 || count < 0) {
    fail(ErrorKind::kInternal, "ordered_sum: {} groups of {} elements on rank {}", local_groups,
         count, comm.rank());
  }
  const int rank = comm.rank();
  const int last = comm.size() - 1;
  for (int64_t begin = 0; begin < count; begin += kPieceElements) {
    const int64_t n = std::min(kPieceElements, count - begin);
    T* acc = out + begin;
    if (rank == 0) {
      std::fill(acc, acc + n, T(0));
    } else {
      comm.recv_bytes(acc, n * static_cast<int64_t>(sizeof(T)), rank - 1);
    }
    for (int64_t g = 0; g < local_groups; ++g) {
      const T* p = partials + g * count + begin;
      for (int64_t i = 0; i < n; ++i) acc[i] += p[i];
    }
    if (rank < last) comm.send_bytes(acc, n * static_cast<int64_t>(sizeof(T)), rank + 1);
  }
  if (last > 0) comm.broadcast_bytes(out, count * static_cast<int64_t>(sizeof(T)), last);
}

}  // namespace

void ordered_sum(Communicator& comm, const float* partials, int64_t local_groups, int64_t count,
                 float* out) {
  chain_sum(comm, partials, local_groups, count, out);
}

void ordered_sum(Communicator& comm, const double* partials, int64_t local_groups, int64_t count,
                 double* out) {
  chain_sum(comm, partials, local_groups, count, out);
}

}  // namespace skim::comm
