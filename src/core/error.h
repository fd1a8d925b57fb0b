#pragma once
// The one error type of skim-dist. Leaf code throws; launch/ catches once, prints one line and
// turns the kind into an exit status (and an abort of the other ranks when there are any).
#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace skim {

enum class ErrorKind {
  kUsage,     // bad command line
  kBadInput,  // a file or text that cannot be used: truncated, corrupt, wrong shape, NaN weight
  kIo,        // the operating system refused: open, read, write, rename
  kNumeric,   // a computation failed: non-positive-definite matrix, divergence
  kComm,      // a collective failed or another rank aborted
  kInternal,  // a bug: an invariant broke
  kStopped,   // not a failure: every rank agreed to stop at a safe point (SIGTERM / SIGUSR1);
              // the work is checkpointed and --resume continues it
};

const char* error_kind_name(ErrorKind kind);

// "Stopped on request, checkpoint written, rerun with --resume" (EX_TEMPFAIL of sysexits.h).
inline constexpr int kExitResumable = 75;

// Exit status for the kind: 2 for usage and bad input, kExitResumable for a requested stop, 3 for
// everything else.
int exit_status(ErrorKind kind);

// `message` made fit for one line of a terminal: control bytes (a newline, an escape sequence
// copied from a corrupt file's key or tensor name) become \xNN, and past kMaxMessageBytes it is
// cut with "...". Every Error message goes through it, so the one catch site prints one line.
inline constexpr size_t kMaxMessageBytes = 2000;
std::string one_line(std::string_view message);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string_view message)
      : std::runtime_error(one_line(message)), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(kind, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace skim

// Checks an invariant that only a bug can break.
#define SKIM_ASSERT(cond)                                                                       \
  do {                                                                                          \
    if (!(cond))                                                                                \
      ::skim::fail(::skim::ErrorKind::kInternal, "internal error: {} ({}:{})", #cond, __FILE__, \
                   __LINE__);                                                                   \
  } while (0)
