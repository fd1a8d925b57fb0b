#pragma once
// Log lines tagged "host:rank: ". Progress (info) is printed by rank 0 only, so an N-rank job
// reads like a single process; warnings and errors are printed by whichever rank has them.
// Everything goes to stderr, one write per line, so lines of different ranks do not interleave.
#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

namespace skim::launch {

// Who this process is. The Runtime sets it; before that it is this host, rank 0 of 1.
struct Identity {
  std::string host;
  int rank = 0;
  int world = 1;
};
const Identity& identity();
void set_identity(Identity identity);

// "host:rank", the tag every line starts with.
std::string rank_tag();

namespace log {

enum class Level { kInfo, kWarning, kError };

// Prints `message` with the tag (and the seconds since start for info); info only on rank 0.
void write(Level level, std::string_view message);

template <typename... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  if (identity().rank == 0) write(Level::kInfo, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void warning(fmt::format_string<Args...> format, Args&&... args) {
  write(Level::kWarning, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
  write(Level::kError, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace log
}  // namespace skim::launch
