// The single-process backend, the shared argument checks, group_block and ordered_sum at one
// rank (where it must equal the serial sum bit for bit, as it does at 2, 3 and 4 ranks).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "comm/backends.h"
#include "comm/ordered_sum.h"
#include "src/core/error.h"
#include "tests/comm/ordered_sum_data.h"

namespace skim::comm {
namespace {

TEST(LocalCommunicator, IsRankZeroOfOne) {
  auto comm = make_local_communicator();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->backend(), Backend::kLocal);
  EXPECT_STREQ(backend_name(comm->backend()), "none");
}

TEST(LocalCommunicator, ReductionsLeaveDataAlone) {
  auto comm = make_local_communicator();
  std::vector<float> f = {1.5f, -2.0f, 3.25f};
  std::vector<double> d = {1e300, -0.0, 7.0};
  const auto f0 = f;
  const auto d0 = d;
  comm->all_reduce_sum(f.data(), 3);
  comm->reduce_sum(d.data(), 3, 0);
  comm->all_reduce_sum(d.data(), 3);
  EXPECT_EQ(f, f0);
  EXPECT_EQ(0, std::memcmp(d.data(), d0.data(), sizeof(double) * 3));
}

TEST(LocalCommunicator, GathersCopy) {
  auto comm = make_local_communicator();
  const std::vector<int> send = {4, 5, 6, 7};
  std::vector<int> recv(4, 0);
  comm->all_gather(std::span<const int>(send), std::span<int>(recv));
  EXPECT_EQ(recv, send);
  std::vector<int> gathered(4, 0);
  comm->gather(std::span<const int>(send), std::span<int>(gathered), 0);
  EXPECT_EQ(gathered, send);
  EXPECT_EQ(comm->all_gather_value(42), std::vector<int>{42});
}

TEST(LocalCommunicator, ChecksArguments) {
  auto comm = make_local_communicator();
  float x = 0;
  EXPECT_THROW(comm->reduce_sum(&x, 1, 1), Error);
  EXPECT_THROW(comm->broadcast_bytes(&x, 4, -1), Error);
  EXPECT_THROW(comm->all_reduce_sum(&x, -1), Error);
  const std::vector<int64_t> wrong = {8};
  EXPECT_THROW(comm->all_gatherv_bytes(&x, 4, &x, wrong), Error);  // counts say 8, sends 4
  const std::vector<int64_t> two = {4, 4};
  EXPECT_THROW(comm->gatherv_bytes(&x, 4, &x, two, 0), Error);  // two counts for one rank
  EXPECT_THROW(comm->send_bytes(&x, 4, 0), Error);
  EXPECT_THROW(comm->set_max_chunk(0), Error);
}

TEST(MaxChunk, DefaultAndEnvironment) {
  unsetenv("SKIM_COMM_MAX_CHUNK");
  EXPECT_EQ(default_max_chunk(), INT_MAX / 2);
  setenv("SKIM_COMM_MAX_CHUNK", "5", 1);
  EXPECT_EQ(default_max_chunk(), 5);
  EXPECT_EQ(make_local_communicator()->max_chunk(), 5);
  for (const char* bad : {"0", "-3", "12x", "99999999999"}) {
    setenv("SKIM_COMM_MAX_CHUNK", bad, 1);
    EXPECT_THROW(default_max_chunk(), Error) << bad;
  }
  unsetenv("SKIM_COMM_MAX_CHUNK");
}

TEST(GroupBlock, CoversEveryGroupOnceInRankOrder) {
  for (int size = 1; size <= 7; ++size) {
    for (int64_t total : {0, 1, 5, 37, 64}) {
      int64_t next = 0;
      for (int r = 0; r < size; ++r) {
        const GroupBlock b = group_block(total, r, size);
        EXPECT_EQ(b.first, next);
        EXPECT_GE(b.count, total / size);
        EXPECT_LE(b.count, total / size + 1);
        next += b.count;
      }
      EXPECT_EQ(next, total);
    }
  }
  EXPECT_THROW(group_block(4, 2, 2), Error);
}

TEST(OrderedSum, OneRankEqualsSerialSumBitForBit) {
  auto comm = make_local_communicator();
  const int64_t groups = 37, count = 1000;
  std::vector<double> partials;
  for (int64_t g = 0; g < groups; ++g) {
    const auto p = testing::group_partial<double>(g, count);
    partials.insert(partials.end(), p.begin(), p.end());
  }
  std::vector<double> out(count, -1.0);
  ordered_sum(*comm, partials.data(), groups, count, out.data());
  const auto reference = testing::serial_sum<double>(groups, count);
  EXPECT_EQ(0, std::memcmp(out.data(), reference.data(), count * sizeof(double)));
}

}  // namespace
}  // namespace skim::comm
