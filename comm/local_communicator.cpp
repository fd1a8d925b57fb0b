// The single-process backend: one rank, so reductions are identities and gathers are copies.
// It needs no MPI, which keeps a one-GPU workstation build free of it.
#include <fmt/core.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "comm/backends.h"
#include "src/core/error.h"

namespace skim::comm {
namespace {

class LocalCommunicator final : public Communicator {
 public:
  Backend backend() const override { return Backend::kLocal; }
  int rank() const override { return 0; }
  int size() const override { return 1; }

  void all_reduce_sum(float* /*data*/, int64_t count) override { check_count(count); }
  void all_reduce_sum(double* /*data*/, int64_t count) override { check_count(count); }
  void all_reduce_sum(int64_t* /*data*/, int64_t count) override { check_count(count); }
  void reduce_sum(int64_t* /*data*/, int64_t count, int root) override {
    check_count(count);
    check_root(root, "reduce_sum");
  }
  void reduce_sum(float* /*data*/, int64_t count, int root) override {
    check_count(count);
    check_root(root, "reduce_sum");
  }
  void reduce_sum(double* /*data*/, int64_t count, int root) override {
    check_count(count);
    check_root(root, "reduce_sum");
  }
  void broadcast_bytes(void* /*data*/, int64_t bytes, int root) override {
    check_count(bytes);
    check_root(root, "broadcast");
  }
  void gatherv_bytes(const void* send, int64_t send_bytes, void* recv,
                     std::span<const int64_t> recv_bytes, int root) override {
    check_root(root, "gatherv");
    check_counts(send_bytes, recv_bytes, "gatherv");
    copy(send, send_bytes, recv);
  }
  void all_gatherv_bytes(const void* send, int64_t send_bytes, void* recv,
                         std::span<const int64_t> recv_bytes) override {
    check_counts(send_bytes, recv_bytes, "all_gatherv");
    copy(send, send_bytes, recv);
  }
  void send_bytes(const void* /*data*/, int64_t /*bytes*/, int dest) override {
    fail(ErrorKind::kInternal, "send to rank {} in a single-process run", dest);
  }
  void recv_bytes(void* /*data*/, int64_t /*bytes*/, int source) override {
    fail(ErrorKind::kInternal, "recv from rank {} in a single-process run", source);
  }
  void barrier() override {}
  [[noreturn]] void abort(std::string_view reason, int status) override {
    fmt::print(stderr, "{}\n", reason);
    std::fflush(stderr);
    std::_Exit(status == 0 ? 1 : status);
  }

 private:
  static void check_count(int64_t count) {
    if (count < 0) fail(ErrorKind::kInternal, "negative element count {}", count);
  }
  static void copy(const void* send, int64_t bytes, void* recv) {
    if (bytes > 0 && send != recv) std::memmove(recv, send, static_cast<size_t>(bytes));
  }
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator() {
  return std::make_unique<LocalCommunicator>();
}

}  // namespace skim::comm
