#pragma once
// What every benchmark records beside its numbers: the host, and the output of small shell
// commands (CPU model, load average, git commit).
#include <unistd.h>

#include <cstdio>
#include <string>

namespace skim::bench {

// stdout of `cmd` without trailing blanks; empty when it cannot run.
inline std::string command_output(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

inline std::string host_name() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

}  // namespace skim::bench
