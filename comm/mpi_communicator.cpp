// The MPI backend (host buffers). MPI counts are int, so every call moves at most max_chunk()
// elements and large buffers take several calls; gathers whose displacements would not fit an
// int fall back to chunked point-to-point transfers.
#include "comm/backends.h"
#include "src/core/error.h"

#if SKIM_HAVE_MPI
#include <fmt/core.h>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "comm/mpi_check.h"
#include "comm/mpi_environment.h"
#endif

namespace skim::comm {

#if SKIM_HAVE_MPI

bool mpi_built() {
  return true;
}

namespace {

constexpr int kPointToPointTag = 7301;

MPI_Datatype mpi_type(const float*) {
  return MPI_FLOAT;
}
MPI_Datatype mpi_type(const double*) {
  return MPI_DOUBLE;
}
MPI_Datatype mpi_type(const int64_t*) {
  return MPI_INT64_T;
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup", -1);
    mpi_check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", -1);
    mpi_check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank", -1);
    mpi_check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size", rank_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

  Backend backend() const override { return Backend::kMpi; }
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
    auto* p = static_cast<char*>(data);
    for_chunks(bytes, [&](int64_t offset, int n) {
      mpi_check(MPI_Bcast(p + offset, n, MPI_BYTE, root, comm_), "MPI_Bcast", rank_);
    });
  }

  void gatherv_bytes(const void* send, int64_t send_bytes, void* recv,
                     std::span<const int64_t> recv_bytes, int root) override {
    check_root(root, "gatherv");
    check_counts(send_bytes, recv_bytes, "gatherv");
    const std::vector<int64_t> offsets = exclusive_offsets(recv_bytes);
    auto* out = static_cast<char*>(recv);
    if (offsets.back() <= max_chunk()) {
      std::vector<int> counts, displs;
      to_int(recv_bytes, offsets, counts, displs);
      const bool in_place = rank_ == root && send == out + offsets[rank_];
      mpi_check(MPI_Gatherv(in_place ? MPI_IN_PLACE : send, static_cast<int>(send_bytes), MPI_BYTE,
                            recv, counts.data(), displs.data(), MPI_BYTE, root, comm_),
                "MPI_Gatherv", rank_);
      return;
    }
    if (rank_ != root) {
      send_bytes_to(send, send_bytes, root);
      return;
    }
    for (int r = 0; r < size_; ++r) {
      if (r == root) {
        copy_local(send, send_bytes, out + offsets[r]);
      } else {
        recv_bytes_from(out + offsets[r], recv_bytes[r], r);
      }
    }
  }

  void all_gatherv_bytes(const void* send, int64_t send_bytes, void* recv,
                         std::span<const int64_t> recv_bytes) override {
    check_counts(send_bytes, recv_bytes, "all_gatherv");
    const std::vector<int64_t> offsets = exclusive_offsets(recv_bytes);
    auto* out = static_cast<char*>(recv);
    if (offsets.back() <= max_chunk()) {
      std::vector<int> counts, displs;
      to_int(recv_bytes, offsets, counts, displs);
      const bool in_place = send == out + offsets[rank_];
      mpi_check(MPI_Allgatherv(in_place ? MPI_IN_PLACE : send, static_cast<int>(send_bytes),
                               MPI_BYTE, recv, counts.data(), displs.data(), MPI_BYTE, comm_),
                "MPI_Allgatherv", rank_);
      return;
    }
    // Each rank's block in turn, broadcast from its owner straight into place.
    copy_local(send, send_bytes, out + offsets[rank_]);
    for (int r = 0; r < size_; ++r) broadcast_bytes(out + offsets[r], recv_bytes[r], r);
  }

  void send_bytes(const void* data, int64_t bytes, int dest) override {
    check_root(dest, "send");
    send_bytes_to(data, bytes, dest);
  }
  void recv_bytes(void* data, int64_t bytes, int source) override {
    check_root(source, "recv");
    recv_bytes_from(data, bytes, source);
  }

  void barrier() override { mpi_check(MPI_Barrier(comm_), "MPI_Barrier", rank_); }

  [[noreturn]] void abort(std::string_view reason, int status) override {
    fmt::print(stderr, "{}\n", reason);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status == 0 ? 1 : status);
    std::_Exit(status == 0 ? 1 : status);  // MPI_Abort does not return; this is for the compiler
  }

 private:
  // Calls fn(offset, n) for consecutive chunks [offset, offset + n) covering [0, count).
  template <typename Fn>
  void for_chunks(int64_t count, Fn&& fn) const {
    if (count < 0) fail(ErrorKind::kInternal, "negative element count {} on rank {}", count, rank_);
    for (int64_t offset = 0; offset < count; offset += max_chunk()) {
      fn(offset, static_cast<int>(std::min(max_chunk(), count - offset)));
    }
  }

  template <typename T>
  void all_reduce(T* data, int64_t count) {
    for_chunks(count, [&](int64_t offset, int n) {
      mpi_check(MPI_Allreduce(MPI_IN_PLACE, data + offset, n, mpi_type(data), MPI_SUM, comm_),
                "MPI_Allreduce", rank_);
    });
  }

  template <typename T>
  void reduce(T* data, int64_t count, int root) {
    check_root(root, "reduce_sum");
    for_chunks(count, [&](int64_t offset, int n) {
      const void* send = rank_ == root ? MPI_IN_PLACE : data + offset;
      void* recv = rank_ == root ? data + offset : nullptr;
      mpi_check(MPI_Reduce(send, recv, n, mpi_type(data), MPI_SUM, root, comm_), "MPI_Reduce",
                rank_);
    });
  }

  void send_bytes_to(const void* data, int64_t bytes, int dest) {
    const auto* p = static_cast<const char*>(data);
    for_chunks(bytes, [&](int64_t offset, int n) {
      mpi_check(MPI_Send(p + offset, n, MPI_BYTE, dest, kPointToPointTag, comm_), "MPI_Send",
                rank_);
    });
  }
  void recv_bytes_from(void* data, int64_t bytes, int source) {
    auto* p = static_cast<char*>(data);
    for_chunks(bytes, [&](int64_t offset, int n) {
      mpi_check(
          MPI_Recv(p + offset, n, MPI_BYTE, source, kPointToPointTag, comm_, MPI_STATUS_IGNORE),
          "MPI_Recv", rank_);
    });
  }

  static void copy_local(const void* send, int64_t bytes, void* dest) {
    if (bytes > 0 && send != dest) std::memmove(dest, send, static_cast<size_t>(bytes));
  }
  // offsets[r] = sum of counts[< r]; offsets[size] = total.
  static std::vector<int64_t> exclusive_offsets(std::span<const int64_t> counts) {
    std::vector<int64_t> offsets(counts.size() + 1, 0);
    std::partial_sum(counts.begin(), counts.end(), offsets.begin() + 1);
    return offsets;
  }
  static void to_int(std::span<const int64_t> counts, const std::vector<int64_t>& offsets,
                     std::vector<int>& out_counts, std::vector<int>& out_displs) {
    out_counts.assign(counts.begin(), counts.end());
    out_displs.assign(offsets.begin(), offsets.end() - 1);
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() {
  if (!mpi_is_initialized()) {
    fail(ErrorKind::kInternal, "the MPI communicator was requested before MPI was initialised");
  }
  return std::make_unique<MpiCommunicator>();
}

#else

bool mpi_built() {
  return false;
}

std::unique_ptr<Communicator> make_mpi_communicator() {
  fail(ErrorKind::kUsage, "this skim-dist was built without MPI (--comm mpi is not available)");
}

#endif

}  // namespace skim::comm
