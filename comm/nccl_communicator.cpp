// The NCCL backend. Device buffers go through NCCL on one stream; host buffers go through the MPI
// communicator that bootstrapped NCCL, so pipeline code may pass either. Every call waits for its
// stream while watching NCCL's asynchronous error, so a broken peer becomes an exception (and an
// abort) instead of a hang.
#include "comm/backends.h"
#include "src/core/error.h"

#if SKIM_HAVE_NCCL && SKIM_HAVE_MPI
#include <cuda_runtime.h>
#include <fmt/core.h>
#include <nccl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <thread>

#include "comm/cuda_devices.h"
#endif

namespace skim::comm {

#if SKIM_HAVE_NCCL && SKIM_HAVE_MPI

bool nccl_built() {
  return true;
}

namespace {

void cuda_check(cudaError_t rc, const char* call, int rank) {
  if (rc != cudaSuccess) {
    fail(ErrorKind::kComm, "{} failed on rank {}: {}", call, rank, cudaGetErrorString(rc));
  }
}

void nccl_check(ncclResult_t rc, const char* call, int rank) {
  if (rc != ncclSuccess && rc != ncclInProgress) {
    fail(ErrorKind::kComm, "{} failed on rank {}: {}", call, rank, ncclGetErrorString(rc));
  }
}

ncclDataType_t nccl_type(const float*) {
  return ncclFloat32;
}
ncclDataType_t nccl_type(const double*) {
  return ncclFloat64;
}
ncclDataType_t nccl_type(const int64_t*) {
  return ncclInt64;
}

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(int device) : host_(make_mpi_communicator()) {
    rank_ = host_->rank();
    size_ = host_->size();
    cuda_select_device(device);
    ncclUniqueId id{};
    if (rank_ == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId", rank_);
    host_->broadcast_bytes(&id, sizeof(id), 0);
    nccl_check(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank", rank_);
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate",
               rank_);
  }
  ~NcclCommunicator() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    if (comm_ != nullptr) ncclCommDestroy(comm_);
  }

  Backend backend() const override { return Backend::kNccl; }
  void set_max_chunk(int64_t elements) override {
    Communicator::set_max_chunk(elements);
    host_->set_max_chunk(elements);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(float* data, int64_t count) override { all_reduce(data, count); }
  void all_reduce_sum(double* data, int64_t count) override { all_reduce(data, count); }
  void all_reduce_sum(int64_t* data, int64_t count) override { all_reduce(data, count); }
  void reduce_sum(float* data, int64_t count, int root) override { reduce(data, count, root); }
  void reduce_sum(double* data, int64_t count, int root) override { reduce(data, count, root); }
  void reduce_sum(int64_t* data, int64_t count, int root) override { reduce(data, count, root); }

  void broadcast_bytes(void* data, int64_t bytes, int root) override {
    check_root(root, "broadcast");
    if (!on_device(data)) return host_->broadcast_bytes(data, bytes, root);
    auto* p = static_cast<char*>(data);
    for_chunks(bytes, [&](int64_t offset, size_t n) {
      nccl_check(ncclBroadcast(p + offset, p + offset, n, ncclChar, root, comm_, stream_),
                 "ncclBroadcast", rank_);
    });
    wait("ncclBroadcast");
  }

  void gatherv_bytes(const void* send, int64_t send_bytes, void* recv,
                     std::span<const int64_t> recv_bytes, int root) override {
    check_root(root, "gatherv");
    check_counts(send_bytes, recv_bytes, "gatherv");
    if (!on_device(send)) return host_->gatherv_bytes(send, send_bytes, recv, recv_bytes, root);
    const std::vector<int64_t> offsets = exclusive_offsets(recv_bytes);
    auto* out = static_cast<char*>(recv);
    const auto* in = static_cast<const char*>(send);
    if (rank_ == root) copy_on_device(in, send_bytes, out + offsets[rank_]);
    nccl_check(ncclGroupStart(), "ncclGroupStart", rank_);
    if (rank_ == root) {
      for (int r = 0; r < size_; ++r) {
        if (r == root) continue;
        for_chunks(recv_bytes[r], [&](int64_t offset, size_t n) {
          nccl_check(ncclRecv(out + offsets[r] + offset, n, ncclChar, r, comm_, stream_),
                     "ncclRecv", rank_);
        });
      }
    } else {
      for_chunks(send_bytes, [&](int64_t offset, size_t n) {
        nccl_check(ncclSend(in + offset, n, ncclChar, root, comm_, stream_), "ncclSend", rank_);
      });
    }
    nccl_check(ncclGroupEnd(), "ncclGroupEnd", rank_);
    wait("gatherv");
  }

  void all_gatherv_bytes(const void* send, int64_t send_bytes, void* recv,
                         std::span<const int64_t> recv_bytes) override {
    check_counts(send_bytes, recv_bytes, "all_gatherv");
    if (!on_device(send)) return host_->all_gatherv_bytes(send, send_bytes, recv, recv_bytes);
    const std::vector<int64_t> offsets = exclusive_offsets(recv_bytes);
    auto* out = static_cast<char*>(recv);
    copy_on_device(send, send_bytes, out + offsets[rank_]);
    // One broadcast per owner, fused into a group so they progress together.
    nccl_check(ncclGroupStart(), "ncclGroupStart", rank_);
    for (int r = 0; r < size_; ++r) {
      for_chunks(recv_bytes[r], [&](int64_t offset, size_t n) {
        char* p = out + offsets[r] + offset;
        nccl_check(ncclBroadcast(p, p, n, ncclChar, r, comm_, stream_), "ncclBroadcast", rank_);
      });
    }
    nccl_check(ncclGroupEnd(), "ncclGroupEnd", rank_);
    wait("all_gatherv");
  }

  void send_bytes(const void* data, int64_t bytes, int dest) override {
    check_root(dest, "send");
    if (!on_device(data)) return host_->send_bytes(data, bytes, dest);
    const auto* p = static_cast<const char*>(data);
    for_chunks(bytes, [&](int64_t offset, size_t n) {
      nccl_check(ncclSend(p + offset, n, ncclChar, dest, comm_, stream_), "ncclSend", rank_);
    });
    wait("ncclSend");
  }
  void recv_bytes(void* data, int64_t bytes, int source) override {
    check_root(source, "recv");
    if (!on_device(data)) return host_->recv_bytes(data, bytes, source);
    auto* p = static_cast<char*>(data);
    for_chunks(bytes, [&](int64_t offset, size_t n) {
      nccl_check(ncclRecv(p + offset, n, ncclChar, source, comm_, stream_), "ncclRecv", rank_);
    });
    wait("ncclRecv");
  }

  void barrier() override {
    wait("barrier");
    host_->barrier();
  }

  [[noreturn]] void abort(std::string_view reason, int status) override {
    if (comm_ != nullptr) ncclCommAbort(comm_);  // frees peers blocked in NCCL kernels
    comm_ = nullptr;
    host_->abort(reason, status);
    std::_Exit(status == 0 ? 1 : status);  // host_->abort does not return; this is for the compiler
  }

 private:
  bool on_device(const void* p) const { return cuda_is_device_pointer(p); }

  template <typename Fn>
  void for_chunks(int64_t count, Fn&& fn) const {
    if (count < 0) fail(ErrorKind::kInternal, "negative element count {} on rank {}", count, rank_);
    for (int64_t offset = 0; offset < count; offset += max_chunk()) {
      fn(offset, static_cast<size_t>(std::min(max_chunk(), count - offset)));
    }
  }

  template <typename T>
  void all_reduce(T* data, int64_t count) {
    if (!on_device(data)) return host_->all_reduce_sum(data, count);
    for_chunks(count, [&](int64_t offset, size_t n) {
      nccl_check(
          ncclAllReduce(data + offset, data + offset, n, nccl_type(data), ncclSum, comm_, stream_),
          "ncclAllReduce", rank_);
    });
    wait("ncclAllReduce");
  }

  template <typename T>
  void reduce(T* data, int64_t count, int root) {
    check_root(root, "reduce_sum");
    if (!on_device(data)) return host_->reduce_sum(data, count, root);
    for_chunks(count, [&](int64_t offset, size_t n) {
      // recvbuff is only written on root, so the other ranks keep their values.
      nccl_check(ncclReduce(data + offset, data + offset, n, nccl_type(data), ncclSum, root, comm_,
                            stream_),
                 "ncclReduce", rank_);
    });
    wait("ncclReduce");
  }

  void copy_on_device(const void* from, int64_t bytes, void* to) {
    if (bytes > 0 && from != to) {
      cuda_check(
          cudaMemcpyAsync(to, from, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, stream_),
          "cudaMemcpyAsync", rank_);
    }
  }

  // Waits for the stream; a failed peer shows up as an asynchronous NCCL error.
  void wait(const char* call) {
    for (;;) {
      const cudaError_t state = cudaStreamQuery(stream_);
      if (state == cudaSuccess) return;
      if (state != cudaErrorNotReady) cuda_check(state, call, rank_);
      ncclResult_t async = ncclSuccess;
      nccl_check(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError", rank_);
      if (async != ncclSuccess && async != ncclInProgress) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        fail(ErrorKind::kComm, "{} failed on rank {}: {}", call, rank_, ncclGetErrorString(async));
      }
      std::this_thread::yield();
    }
  }

  static std::vector<int64_t> exclusive_offsets(std::span<const int64_t> counts) {
    std::vector<int64_t> offsets(counts.size() + 1, 0);
    std::partial_sum(counts.begin(), counts.end(), offsets.begin() + 1);
    return offsets;
  }

  std::unique_ptr<Communicator> host_;
  int rank_ = 0;
  int size_ = 1;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(int device) {
  return std::make_unique<NcclCommunicator>(device);
}

#else

bool nccl_built() {
  return false;
}

std::unique_ptr<Communicator> make_nccl_communicator(int /*device*/) {
  fail(ErrorKind::kUsage,
       "this skim-dist was built without NCCL and MPI together (--comm nccl is not available)");
}

#endif

}  // namespace skim::comm
