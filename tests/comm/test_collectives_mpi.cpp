// Every collective of the MPI backend against a serial reference computed on each rank, for
// sizes that are not powers of two, zero-length contributions, every root, and chunk sizes from
// 1 element up (so that the chunking loops run many times). Reduction data are small multiples
// of 0.5, so their sums are exact in any order and the comparison can be exact.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "tests/comm/mpi_test_main.h"

namespace skim::comm {
namespace {

using testing::world;

const std::vector<int64_t> kCounts = {0, 1, 13, 1000, 4099};

template <typename T>
T reduction_value(int rank, int64_t i) {
  return static_cast<T>(((rank + 1) * (i % 97) - 3 * (i % 11) + rank) * 0.5);
}

uint8_t byte_value(int rank, int64_t i) {
  return static_cast<uint8_t>((i * 131 + rank * 17) & 0xFF);
}

// Bytes rank r contributes to the v-collectives: uneven, sometimes zero.
int64_t v_count(int rank, int64_t scale) {
  return ((rank * 7 + 3) % 5) * scale + (rank % 2);
}

class Collectives : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override {
    world().set_max_chunk(GetParam() > 0 ? GetParam() : default_max_chunk());
  }
  void TearDown() override { world().set_max_chunk(default_max_chunk()); }
  int rank() const { return world().rank(); }
  int size() const { return world().size(); }
};

template <typename T>
void check_all_reduce(int size, int rank) {
  for (const int64_t n : kCounts) {
    std::vector<T> data(n);
    for (int64_t i = 0; i < n; ++i) data[i] = reduction_value<T>(rank, i);
    world().all_reduce_sum(data.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      T expected = 0;
      for (int r = 0; r < size; ++r) expected += reduction_value<T>(r, i);
      ASSERT_EQ(data[i], expected) << "count " << n << " element " << i;
    }
  }
}

TEST_P(Collectives, AllReduceSumFloat) {
  check_all_reduce<float>(size(), rank());
}
TEST_P(Collectives, AllReduceSumDouble) {
  check_all_reduce<double>(size(), rank());
}
TEST_P(Collectives, AllReduceSumInt64) {
  check_all_reduce<int64_t>(size(), rank());
}

template <typename T>
void check_reduce(int size, int rank) {
  for (int root = 0; root < size; ++root) {
    for (const int64_t n : kCounts) {
      std::vector<T> data(n);
      for (int64_t i = 0; i < n; ++i) data[i] = reduction_value<T>(rank, i);
      world().reduce_sum(data.data(), n, root);
      for (int64_t i = 0; i < n; ++i) {
        T expected = reduction_value<T>(rank, i);  // non-root buffers keep their values
        if (rank == root) {
          expected = 0;
          for (int r = 0; r < size; ++r) expected += reduction_value<T>(r, i);
        }
        ASSERT_EQ(data[i], expected) << "root " << root << " count " << n << " element " << i;
      }
    }
  }
}

TEST_P(Collectives, ReduceSumFloat) {
  check_reduce<float>(size(), rank());
}
TEST_P(Collectives, ReduceSumDouble) {
  check_reduce<double>(size(), rank());
}
TEST_P(Collectives, ReduceSumInt64) {
  check_reduce<int64_t>(size(), rank());
}

TEST_P(Collectives, BroadcastFromEveryRoot) {
  for (int root = 0; root < size(); ++root) {
    for (const int64_t n : kCounts) {
      std::vector<uint8_t> data(n, 0xEE);
      if (rank() == root) {
        for (int64_t i = 0; i < n; ++i) data[i] = byte_value(root, i);
      }
      world().broadcast_bytes(data.data(), n, root);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(data[i], byte_value(root, i)) << "root " << root << " count " << n;
      }
    }
  }
}

TEST_P(Collectives, TypedBroadcastOfDoubles) {
  std::vector<double> data(1001, -1.0);
  if (rank() == 0) std::iota(data.begin(), data.end(), 0.25);
  world().broadcast(std::span<double>(data), 0);
  for (size_t i = 0; i < data.size(); ++i) ASSERT_EQ(data[i], 0.25 + static_cast<double>(i));
}

// Reference layout of the v-collectives: every rank's bytes back to back in rank order.
std::vector<uint8_t> expected_gather(int size, int64_t scale, std::vector<int64_t>& counts) {
  counts.assign(size, 0);
  std::vector<uint8_t> all;
  for (int r = 0; r < size; ++r) {
    counts[r] = v_count(r, scale);
    for (int64_t i = 0; i < counts[r]; ++i) all.push_back(byte_value(r, i));
  }
  return all;
}

TEST_P(Collectives, GathervToEveryRoot) {
  for (const int64_t scale : {int64_t{0}, int64_t{1}, int64_t{37}, int64_t{1000}}) {
    std::vector<int64_t> counts;
    const std::vector<uint8_t> expected = expected_gather(size(), scale, counts);
    std::vector<uint8_t> send(counts[rank()]);
    for (int64_t i = 0; i < counts[rank()]; ++i) send[i] = byte_value(rank(), i);
    for (int root = 0; root < size(); ++root) {
      std::vector<uint8_t> recv(expected.size(), 0xEE);
      world().gatherv_bytes(send.data(), counts[rank()], recv.data(), counts, root);
      if (rank() == root) {
        EXPECT_EQ(recv, expected) << "root " << root << " scale " << scale;
      } else {
        EXPECT_EQ(recv, std::vector<uint8_t>(expected.size(), 0xEE)) << "non-root recv touched";
      }
    }
  }
}

TEST_P(Collectives, AllGatherv) {
  for (const int64_t scale : {int64_t{0}, int64_t{1}, int64_t{37}, int64_t{1000}}) {
    std::vector<int64_t> counts;
    const std::vector<uint8_t> expected = expected_gather(size(), scale, counts);
    std::vector<uint8_t> send(counts[rank()]);
    for (int64_t i = 0; i < counts[rank()]; ++i) send[i] = byte_value(rank(), i);
    std::vector<uint8_t> recv(expected.size(), 0xEE);
    world().all_gatherv_bytes(send.data(), counts[rank()], recv.data(), counts);
    EXPECT_EQ(recv, expected) << "scale " << scale;
  }
}

TEST_P(Collectives, AllGathervInPlace) {
  std::vector<int64_t> counts;
  const std::vector<uint8_t> expected = expected_gather(size(), 53, counts);
  const int64_t offset = std::accumulate(counts.begin(), counts.begin() + rank(), int64_t{0});
  std::vector<uint8_t> recv(expected.size(), 0xEE);
  for (int64_t i = 0; i < counts[rank()]; ++i) recv[offset + i] = byte_value(rank(), i);
  world().all_gatherv_bytes(recv.data() + offset, counts[rank()], recv.data(), counts);
  EXPECT_EQ(recv, expected);
}

TEST_P(Collectives, TypedGatherAndAllGather) {
  const std::vector<double> mine = {rank() + 0.5, rank() * 2.0, -1.0 * rank()};
  std::vector<double> expected;
  for (int r = 0; r < size(); ++r) expected.insert(expected.end(), {r + 0.5, r * 2.0, -1.0 * r});
  std::vector<double> all(expected.size(), 0.0);
  world().all_gather(std::span<const double>(mine), std::span<double>(all));
  EXPECT_EQ(all, expected);
  const int root = size() - 1;
  std::vector<double> gathered(expected.size(), 0.0);
  world().gather(std::span<const double>(mine), std::span<double>(gathered), root);
  if (rank() == root) {
    EXPECT_EQ(gathered, expected);
  }
  const std::vector<int64_t> values = world().all_gather_value<int64_t>(int64_t{1000} * rank());
  for (int r = 0; r < size(); ++r) EXPECT_EQ(values[r], 1000 * r);
}

TEST_P(Collectives, SendRecvChain) {
  // rank r receives from r-1 and passes on to r+1, adding its own byte pattern.
  const int64_t n = 3001;
  std::vector<uint8_t> data(n, 0);
  if (rank() > 0) world().recv_bytes(data.data(), n, rank() - 1);
  for (int64_t i = 0; i < n; ++i) data[i] = static_cast<uint8_t>(data[i] + byte_value(rank(), i));
  if (rank() + 1 < size()) world().send_bytes(data.data(), n, rank() + 1);
  if (rank() + 1 == size()) {
    for (int64_t i = 0; i < n; ++i) {
      uint8_t expected = 0;
      for (int r = 0; r < size(); ++r) expected = static_cast<uint8_t>(expected + byte_value(r, i));
      ASSERT_EQ(data[i], expected) << "element " << i;
    }
  }
  world().barrier();
}

INSTANTIATE_TEST_SUITE_P(ChunkSizes, Collectives, ::testing::Values(0, 1, 7, 64),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return info.param == 0 ? std::string("DefaultChunk")
                                                  : "Chunk" + std::to_string(info.param);
                         });

TEST(CollectivesEnv, MaxChunkComesFromEnvironment) {
  const char* text = std::getenv("SKIM_COMM_MAX_CHUNK");
  if (text == nullptr) {
    EXPECT_EQ(world().max_chunk(), INT_MAX / 2);
  } else {
    EXPECT_EQ(world().max_chunk(), std::atoll(text));
  }
}

TEST(CollectivesEnv, BadRootIsAnError) {
  float x = 1.0f;
  EXPECT_THROW(world().reduce_sum(&x, 1, world().size()), std::exception);
  EXPECT_THROW(world().broadcast_bytes(&x, 4, -1), std::exception);
}

}  // namespace
}  // namespace skim::comm
