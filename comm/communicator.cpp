#include "comm/communicator.h"

#include <charconv>
#include <climits>
#include <cstdlib>
#include <string>

#include "src/core/error.h"

namespace skim::comm {

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::kLocal:
      return "none";
    case Backend::kMpi:
      return "mpi";
    case Backend::kNccl:
      return "nccl";
  }
  return "unknown";
}

int64_t default_max_chunk() {
  const char* text = std::getenv("SKIM_COMM_MAX_CHUNK");
  if (text == nullptr || *text == '\0') return INT_MAX / 2;
  const std::string_view view(text);
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(view.data(), view.data() + view.size(), value);
  if (ec != std::errc() || end != view.data() + view.size() || value < 1 || value > INT_MAX) {
    fail(ErrorKind::kUsage, "SKIM_COMM_MAX_CHUNK='{}' is not an element count in [1, {}]", view,
         INT_MAX);
  }
  return value;
}

Communicator::Communicator() : max_chunk_(default_max_chunk()) {}

void Communicator::set_max_chunk(int64_t elements) {
  if (elements < 1 || elements > INT_MAX) {
    fail(ErrorKind::kInternal, "communicator chunk {} is outside [1, {}]", elements, INT_MAX);
  }
  max_chunk_ = elements;
}

void Communicator::check_root(int root, const char* call) const {
  if (root < 0 || root >= size()) {
    fail(ErrorKind::kInternal, "{}: root {} is not a rank of a communicator of {} on rank {}", call,
         root, size(), rank());
  }
}

void Communicator::check_counts(int64_t send_bytes, std::span<const int64_t> recv_bytes,
                                const char* call) const {
  if (static_cast<int>(recv_bytes.size()) != size()) {
    fail(ErrorKind::kInternal, "{}: {} counts for {} ranks on rank {}", call, recv_bytes.size(),
         size(), rank());
  }
  for (const int64_t count : recv_bytes) {
    if (count < 0) fail(ErrorKind::kInternal, "{}: negative count on rank {}", call, rank());
  }
  if (recv_bytes[rank()] != send_bytes) {
    fail(ErrorKind::kInternal, "{}: rank {} sends {} bytes but the counts say {}", call, rank(),
         send_bytes, recv_bytes[rank()]);
  }
}

std::vector<int64_t> Communicator::to_bytes(std::span<const int64_t> counts, size_t element_size) {
  std::vector<int64_t> bytes(counts.size());
  for (size_t i = 0; i < counts.size(); ++i) {
    bytes[i] = counts[i] * static_cast<int64_t>(element_size);
  }
  return bytes;
}

}  // namespace skim::comm
