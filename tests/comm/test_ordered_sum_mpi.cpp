// ordered_sum under MPI gives exactly the bits of the serial sum in group order, whatever the
// number of ranks (the same program runs at 1, 2, 3 and 4 ranks against the same serial
// reference), while a plain all-reduce of per-rank sums does not.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "comm/ordered_sum.h"
#include "tests/comm/mpi_test_main.h"
#include "tests/comm/ordered_sum_data.h"

namespace skim::comm {
namespace {

using testing::world;

template <typename T>
std::vector<T> local_partials(int64_t count, GroupBlock block) {
  std::vector<T> partials;
  partials.reserve(block.count * count);
  for (int64_t g = block.first; g < block.first + block.count; ++g) {
    const std::vector<T> p = testing::group_partial<T>(g, count);
    partials.insert(partials.end(), p.begin(), p.end());
  }
  return partials;
}

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

template <typename T>
void check_ordered_sum(int64_t groups, int64_t count) {
  const GroupBlock block = group_block(groups, world().rank(), world().size());
  const std::vector<T> partials = local_partials<T>(count, block);
  std::vector<T> out(count, T(-7));
  ordered_sum(world(), partials.data(), block.count, count, out.data());
  const std::vector<T> reference = testing::serial_sum<T>(groups, count);
  EXPECT_TRUE(same_bits(out, reference)) << groups << " groups of " << count;

  // The naive way: each rank sums its own groups, then all-reduce. For more than one rank the
  // association differs, and on this data that shows in the bits.
  std::vector<T> naive(count, T(0));
  for (int64_t g = 0; g < block.count; ++g) {
    for (int64_t i = 0; i < count; ++i) naive[i] += partials[g * count + i];
  }
  world().all_reduce_sum(naive.data(), count);
  if (world().size() > 1 && groups >= world().size()) {
    EXPECT_FALSE(same_bits(naive, reference)) << "test data too tame to show the order";
  }
}

TEST(OrderedSum, DoubleManyGroups) {
  check_ordered_sum<double>(37, 1000);
}
TEST(OrderedSum, FloatManyGroups) {
  check_ordered_sum<float>(37, 1001);
}
TEST(OrderedSum, FewerGroupsThanRanks) {
  check_ordered_sum<double>(1, 513);
}
TEST(OrderedSum, LongVectorsSpanSeveralPieces) {
  check_ordered_sum<float>(5, (1 << 20) * 2 + 3);
}

TEST(OrderedSum, SmallChunksToo) {
  world().set_max_chunk(5);
  check_ordered_sum<double>(9, 777);
  world().set_max_chunk(default_max_chunk());
}

}  // namespace
}  // namespace skim::comm
