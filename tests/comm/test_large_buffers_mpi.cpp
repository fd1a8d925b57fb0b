// Buffers beyond INT_MAX bytes with the default chunk size: a 2 GiB + 17 broadcast and a gatherv
// whose total (and last displacement) does not fit an int, so the int64 offsets and the
// point-to-point fallback run for real. Needs about 4.5 GB of memory at 2 ranks.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "tests/comm/mpi_test_main.h"

namespace skim::comm {
namespace {

using testing::world;

uint8_t pattern(int rank, int64_t i) {
  return static_cast<uint8_t>((i * 2654435761u + static_cast<uint64_t>(rank) * 97u) >> 13);
}

TEST(LargeBuffers, BroadcastAboveIntMax) {
  const int64_t n = int64_t{INT_MAX} + 17;
  std::vector<uint8_t> data(n, 0);
  const int root = world().size() - 1;
  if (world().rank() == root) {
    for (int64_t i = 0; i < n; ++i) data[i] = pattern(root, i);
  }
  world().broadcast_bytes(data.data(), n, root);
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) wrong += data[i] != pattern(root, i);
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(data[n - 1], pattern(root, n - 1));
}

TEST(LargeBuffers, GathervWithTotalAboveIntMax) {
  const int64_t per_rank = int64_t{INT_MAX} / world().size() + 4099;
  std::vector<int64_t> counts(world().size(), per_rank);
  std::vector<uint8_t> send(per_rank);
  for (int64_t i = 0; i < per_rank; ++i) send[i] = pattern(world().rank(), i);
  std::vector<uint8_t> recv(world().rank() == 0 ? per_rank * world().size() : 0);
  world().gatherv_bytes(send.data(), per_rank, recv.data(), counts, 0);
  send.clear();
  send.shrink_to_fit();
  if (world().rank() == 0) {
    int64_t wrong = 0;
    for (int r = 0; r < world().size(); ++r) {
      for (int64_t i = 0; i < per_rank; ++i) wrong += recv[r * per_rank + i] != pattern(r, i);
    }
    EXPECT_EQ(wrong, 0);
  }
}

}  // namespace
}  // namespace skim::comm
