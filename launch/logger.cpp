#include "launch/logger.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>

namespace skim::launch {
namespace {

std::string this_host() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

struct State {
  std::mutex mutex;
  Identity identity{this_host(), 0, 1};
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

State& state() {
  static State s;
  return s;
}

}  // namespace

const Identity& identity() {
  return state().identity;
}

void set_identity(Identity identity) {
  if (identity.host.empty()) identity.host = this_host();
  std::lock_guard lock(state().mutex);
  state().identity = std::move(identity);
}

std::string rank_tag() {
  return fmt::format("{}:{}", identity().host, identity().rank);
}

namespace log {

void write(Level level, std::string_view message) {
  std::string line;
  switch (level) {
    case Level::kInfo: {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - state().start).count();
      line = fmt::format("{}: [{:7.1f}s] {}\n", rank_tag(), seconds, message);
      break;
    }
    case Level::kWarning:
      line = fmt::format("{}: warning: {}\n", rank_tag(), message);
      break;
    case Level::kError:
      line = fmt::format("{}: error: {}\n", rank_tag(), message);
      break;
  }
  std::lock_guard lock(state().mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace log
}  // namespace skim::launch
