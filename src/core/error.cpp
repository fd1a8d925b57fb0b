#include "src/core/error.h"

namespace skim {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUsage:
      return "usage";
    case ErrorKind::kBadInput:
      return "bad input";
    case ErrorKind::kIo:
      return "i/o";
    case ErrorKind::kNumeric:
      return "numeric";
    case ErrorKind::kComm:
      return "communication";
    case ErrorKind::kInternal:
      return "internal";
    case ErrorKind::kStopped:
      return "stopped";
  }
  return "unknown";
}

std::string one_line(std::string_view message) {
  std::string out;
  out.reserve(message.size());
  for (const char c : message) {
    if (out.size() >= kMaxMessageBytes) {
      out += "...";
      break;
    }
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f)
      out += fmt::format("\\x{:02x}", byte);
    else
      out += c;
  }
  return out;
}

int exit_status(ErrorKind kind) {
  if (kind == ErrorKind::kStopped) return kExitResumable;
  return (kind == ErrorKind::kUsage || kind == ErrorKind::kBadInput) ? 2 : 3;
}

}  // namespace skim
