#pragma once
// The one communicator interface of skim-dist. Pipeline code talks to ranks only through this;
// the backends (local, MPI, NCCL) live behind it, so no header here names MPI or NCCL types.
//
// Every call is blocking and collective unless it says otherwise: all ranks of the communicator
// must make the same calls in the same order with matching counts. Counts are int64 and have no
// INT_MAX limit: backends split large buffers into chunks of at most max_chunk() elements.
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

namespace skim::comm {

enum class Backend { kLocal, kMpi, kNccl };

const char* backend_name(Backend backend);

class Communicator {
 public:
  Communicator();
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual Backend backend() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Largest element count handed to one underlying library call (bytes for byte collectives).
  // Default INT_MAX / 2, or SKIM_COMM_MAX_CHUNK from the environment (tests force it small).
  int64_t max_chunk() const { return max_chunk_; }
  virtual void set_max_chunk(int64_t elements);

  // Sum over ranks, in place; every rank gets the result. Not bit-reproducible across rank counts:
  // use ordered_sum (comm/ordered_sum.h) where the bits must not depend on the number of ranks.
  virtual void all_reduce_sum(float* data, int64_t count) = 0;
  virtual void all_reduce_sum(double* data, int64_t count) = 0;
  // Integer sums are exact, hence the same bits for any rank count (fixed-point accumulation;
  // overflow is the caller's to rule out).
  virtual void all_reduce_sum(int64_t* data, int64_t count) = 0;
  // Sum over ranks into `data` on `root`; the other ranks' buffers keep their values.
  virtual void reduce_sum(float* data, int64_t count, int root) = 0;
  virtual void reduce_sum(double* data, int64_t count, int root) = 0;
  virtual void reduce_sum(int64_t* data, int64_t count, int root) = 0;

  // Root's `bytes` bytes to every rank.
  virtual void broadcast_bytes(void* data, int64_t bytes, int root) = 0;
  // Rank r sends `send_bytes` (== recv_bytes[r]); on root they land back to back in rank order
  // in `recv` (size: sum of recv_bytes). `recv` is only touched on root.
  virtual void gatherv_bytes(const void* send, int64_t send_bytes, void* recv,
                             std::span<const int64_t> recv_bytes, int root) = 0;
  // As gatherv_bytes, but every rank receives.
  virtual void all_gatherv_bytes(const void* send, int64_t send_bytes, void* recv,
                                 std::span<const int64_t> recv_bytes) = 0;
  // Point to point (not collective): blocks until the matching recv / send.
  virtual void send_bytes(const void* data, int64_t bytes, int dest) = 0;
  virtual void recv_bytes(void* data, int64_t bytes, int source) = 0;

  virtual void barrier() = 0;
  // Ends the whole job: prints `reason`, then makes every rank exit with a non-zero status
  // (MPI_Abort, ncclCommAbort). Only launch/ calls this, after catching an error.
  [[noreturn]] virtual void abort(std::string_view reason, int status) = 0;

  // Typed conveniences over the byte collectives (trivially copyable element types).
  template <typename T>
  void broadcast(std::span<T> data, int root) {
    static_assert(std::is_trivially_copyable_v<T>);
    broadcast_bytes(data.data(), static_cast<int64_t>(data.size_bytes()), root);
  }
  template <typename T>
  void gatherv(std::span<const T> send, std::span<T> recv, std::span<const int64_t> recv_counts,
               int root) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto bytes = to_bytes(recv_counts, sizeof(T));
    gatherv_bytes(send.data(), static_cast<int64_t>(send.size_bytes()), recv.data(), bytes, root);
  }
  template <typename T>
  void all_gatherv(std::span<const T> send, std::span<T> recv,
                   std::span<const int64_t> recv_counts) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto bytes = to_bytes(recv_counts, sizeof(T));
    all_gatherv_bytes(send.data(), static_cast<int64_t>(send.size_bytes()), recv.data(), bytes);
  }
  // Equal contributions: recv holds size() * send.size() elements.
  template <typename T>
  void gather(std::span<const T> send, std::span<T> recv, int root) {
    const std::vector<int64_t> counts(size(), static_cast<int64_t>(send.size()));
    gatherv(send, recv, std::span<const int64_t>(counts), root);
  }
  template <typename T>
  void all_gather(std::span<const T> send, std::span<T> recv) {
    const std::vector<int64_t> counts(size(), static_cast<int64_t>(send.size()));
    all_gatherv(send, recv, std::span<const int64_t>(counts));
  }
  // One value from every rank, in rank order, on every rank.
  template <typename T>
  std::vector<T> all_gather_value(const T& value) {
    std::vector<T> out(size());
    all_gather(std::span<const T>(&value, 1), std::span<T>(out));
    return out;
  }

 protected:
  // Checks shared by every backend; throw kInternal naming the call.
  void check_root(int root, const char* call) const;
  void check_counts(int64_t send_bytes, std::span<const int64_t> recv_bytes,
                    const char* call) const;

 private:
  static std::vector<int64_t> to_bytes(std::span<const int64_t> counts, size_t element_size);
  int64_t max_chunk_;
};

// SKIM_COMM_MAX_CHUNK if set (throws kUsage when malformed), else INT_MAX / 2.
int64_t default_max_chunk();

}  // namespace skim::comm
