// All-reduce bandwidth of the communicator chosen as skim-dist would choose it (--comm auto):
// float sums of 1 MiB to 1 GiB. Prints one JSON object on rank 0: per size the slowest rank's
// mean time, algorithm bandwidth (bytes / time) and bus bandwidth (algbw * 2 (n-1) / n, the
// traffic per rank of a ring, comparable across rank counts as in nccl-tests).
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <vector>

#include "comm/communicator.h"
#include "launch/runtime.h"

namespace {

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Fewer repetitions for big buffers so the whole sweep stays within a few minutes.
int repetitions(int64_t bytes) {
  const int64_t budget = int64_t{4} << 30;  // about 4 GiB reduced per size
  return static_cast<int>(std::clamp<int64_t>(budget / bytes, 3, 50));
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t max_bytes = argc > 1 ? std::atoll(argv[1]) : (int64_t{1} << 30);
  return skim::launch::run_guarded(skim::launch::CommChoice::kAuto, [&](skim::launch::Runtime& rt) {
    auto& comm = rt.comm();
    nlohmann::json runs = nlohmann::json::array();
    for (int64_t bytes = int64_t{1} << 20; bytes <= max_bytes; bytes *= 4) {
      const int64_t count = bytes / static_cast<int64_t>(sizeof(float));
      std::vector<float> data(count, 1.0f);
      comm.all_reduce_sum(data.data(), count);  // warm-up: first touch, connections
      const int reps = repetitions(bytes);
      comm.barrier();
      const double start = seconds_now();
      for (int i = 0; i < reps; ++i) comm.all_reduce_sum(data.data(), count);
      const double local = (seconds_now() - start) / reps;
      double slowest = 0;
      for (double t : comm.all_gather_value(local)) slowest = std::max(slowest, t);
      const int n = comm.size();
      const double algbw = static_cast<double>(bytes) / slowest / 1e9;
      const double busbw = n > 1 ? algbw * 2.0 * (n - 1) / n : 0.0;
      runs.push_back({{"bytes", bytes},
                      {"repetitions", reps},
                      {"seconds", slowest},
                      {"algbw_GBps", algbw},
                      {"busbw_GBps", busbw}});
      if (rt.rank() == 0) {
        fmt::print(stderr, "np {} {:>11} B  {:9.3f} ms  algbw {:7.3f} GB/s  busbw {:7.3f} GB/s\n",
                   n, bytes, slowest * 1e3, algbw, busbw);
      }
    }
    if (rt.rank() == 0) {
      const nlohmann::json result = {{"ranks", comm.size()},
                                     {"backend", skim::comm::backend_name(comm.backend())},
                                     {"threads_per_rank", rt.threads()},
                                     {"sizes", runs}};
      fmt::print("{}\n", result.dump());
    }
  });
}
