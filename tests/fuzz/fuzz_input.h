#pragma once
// What every fuzz target shares. The readers open paths, as the program does, so each input is
// written to a file first; and a bad input may end only one way: one skim::Error of kind kBadInput
// whose message is one line (the program prints it and exits 2). Anything else is a finding: a
// crash, a sanitizer report, another error kind, another exception type, a multi-line message.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "src/core/error.h"

namespace skim::fuzz {

// Writes the input to `name` in this process's scratch folder (under $TMPDIR, removed at exit)
// and returns its path.
std::string write_input(const uint8_t* data, size_t size, const std::string& name);

// The scratch folder itself, for readers that take a folder.
const std::string& scratch_dir();

[[noreturn]] void finding(const char* what, const std::string& message);

// Runs `read` on one input; returns true when it accepted the input, false when it refused it
// the one allowed way.
template <typename Read>
bool accepts(Read&& read) {
  try {
    read();
    return true;
  } catch (const Error& e) {
    const std::string message = e.what();
    if (e.kind() != ErrorKind::kBadInput) finding(error_kind_name(e.kind()), message);
    if (message.empty() || message.find('\n') != std::string::npos)
      finding("a message that is not one line", message);
    return false;
  }
}

}  // namespace skim::fuzz
