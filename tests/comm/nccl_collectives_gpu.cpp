// The NCCL backend on device buffers, against the same serial references as the MPI test, plus
// host buffers through the same communicator (which take its MPI path). Runs under mpirun with
// one GPU per rank; with fewer GPUs than ranks on a node it skips.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "comm/backends.h"
#include "comm/cuda_devices.h"
#include "comm/mpi_environment.h"
#include "comm/ordered_sum.h"
#include "tests/comm/ordered_sum_data.h"

namespace skim::comm {
namespace {

std::unique_ptr<Communicator> g_nccl;
MpiPlacement g_place;

// A device copy of a host vector, freed at scope end.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(const std::vector<T>& host) : n_(host.size()) {
    EXPECT_EQ(cudaMalloc(&p_, std::max<size_t>(1, n_) * sizeof(T)), cudaSuccess);
    if (n_ > 0) cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice);
  }
  ~DeviceBuffer() { cudaFree(p_); }
  T* get() { return p_; }
  std::vector<T> to_host() const {
    std::vector<T> host(n_);
    if (n_ > 0) cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
  }

 private:
  T* p_ = nullptr;
  size_t n_;
};

template <typename T>
T value(int rank, int64_t i) {
  return static_cast<T>(((rank + 1) * (i % 97) - 3 * (i % 11) + rank) * 0.5);
}

class Nccl : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override {
    if (!g_nccl) GTEST_SKIP() << "fewer GPUs than ranks on this node";
    g_nccl->set_max_chunk(GetParam() > 0 ? GetParam() : default_max_chunk());
  }
  int rank() const { return g_nccl->rank(); }
  int size() const { return g_nccl->size(); }
};

TEST_P(Nccl, AllReduceAndReduceOnDevice) {
  for (const int64_t n : {int64_t{1}, int64_t{13}, int64_t{4099}}) {
    std::vector<float> host(n);
    for (int64_t i = 0; i < n; ++i) host[i] = value<float>(rank(), i);
    DeviceBuffer<float> all(host);
    g_nccl->all_reduce_sum(all.get(), n);
    const std::vector<float> summed = all.to_host();
    std::vector<double> hd(n);
    for (int64_t i = 0; i < n; ++i) hd[i] = value<double>(rank(), i);
    DeviceBuffer<double> reduced(hd);
    g_nccl->reduce_sum(reduced.get(), n, size() - 1);
    const std::vector<double> at_root = reduced.to_host();
    for (int64_t i = 0; i < n; ++i) {
      float expected = 0;
      double expected_d = 0;
      for (int r = 0; r < size(); ++r) {
        expected += value<float>(r, i);
        expected_d += value<double>(r, i);
      }
      ASSERT_EQ(summed[i], expected);
      ASSERT_EQ(at_root[i], rank() == size() - 1 ? expected_d : value<double>(rank(), i));
    }
  }
}

TEST_P(Nccl, BroadcastAndGathersOnDevice) {
  const int64_t n = 1001;
  std::vector<uint8_t> host(n, 0);
  if (rank() == 0) {
    for (int64_t i = 0; i < n; ++i) host[i] = static_cast<uint8_t>(i * 7);
  }
  DeviceBuffer<uint8_t> b(host);
  g_nccl->broadcast_bytes(b.get(), n, 0);
  const std::vector<uint8_t> got = b.to_host();
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], static_cast<uint8_t>(i * 7));

  std::vector<int64_t> counts(size());
  std::vector<uint8_t> expected;
  for (int r = 0; r < size(); ++r) {
    counts[r] = 100 * r + 3;
    for (int64_t i = 0; i < counts[r]; ++i) expected.push_back(static_cast<uint8_t>(r + i));
  }
  std::vector<uint8_t> mine(counts[rank()]);
  for (int64_t i = 0; i < counts[rank()]; ++i) mine[i] = static_cast<uint8_t>(rank() + i);
  DeviceBuffer<uint8_t> send(mine);
  DeviceBuffer<uint8_t> recv(std::vector<uint8_t>(expected.size(), 0));
  g_nccl->all_gatherv_bytes(send.get(), counts[rank()], recv.get(), counts);
  EXPECT_EQ(recv.to_host(), expected);
  DeviceBuffer<uint8_t> gathered(std::vector<uint8_t>(expected.size(), 0));
  g_nccl->gatherv_bytes(send.get(), counts[rank()], gathered.get(), counts, 0);
  if (rank() == 0) {
    EXPECT_EQ(gathered.to_host(), expected);
  }
}

TEST_P(Nccl, HostBuffersAndOrderedSum) {
  std::vector<double> host = {1.0 + rank(), 2.5};
  g_nccl->all_reduce_sum(host.data(), 2);
  EXPECT_EQ(host[1], 2.5 * size());
  const int64_t groups = 11, count = 333;
  const GroupBlock block = group_block(groups, rank(), size());
  std::vector<double> partials;
  for (int64_t g = block.first; g < block.first + block.count; ++g) {
    const auto p = testing::group_partial<double>(g, count);
    partials.insert(partials.end(), p.begin(), p.end());
  }
  std::vector<double> out(count);
  ordered_sum(*g_nccl, partials.data(), block.count, count, out.data());
  const auto reference = testing::serial_sum<double>(groups, count);
  EXPECT_EQ(0, std::memcmp(out.data(), reference.data(), count * sizeof(double)));
}

INSTANTIATE_TEST_SUITE_P(ChunkSizes, Nccl, ::testing::Values(0, 7));

}  // namespace
}  // namespace skim::comm

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  skim::comm::mpi_initialize();
  skim::comm::g_place = skim::comm::mpi_placement();
  const int gpus = skim::comm::cuda_device_count();
  // Every rank must agree, or some would wait in ncclCommInitRank for the others.
  if (skim::comm::mpi_all_min(gpus >= skim::comm::g_place.local_size ? 1 : 0) == 1) {
    skim::comm::g_nccl = skim::comm::make_nccl_communicator(skim::comm::g_place.local_rank);
  }
  const int status = RUN_ALL_TESTS();
  skim::comm::g_nccl.reset();
  skim::comm::mpi_finalize();
  return status;
}
