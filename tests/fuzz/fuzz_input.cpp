#include "tests/fuzz/fuzz_input.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace skim::fuzz {
namespace fs = std::filesystem;

namespace {

struct ScratchDir {
  std::string path;
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    path = (fs::path(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") /
            ("skim-fuzz-" + std::to_string(getpid())))
               .string();
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

const std::string& scratch_dir() {
  static const ScratchDir dir;
  return dir.path;
}

std::string write_input(const uint8_t* data, size_t size, const std::string& name) {
  const std::string path = (fs::path(scratch_dir()) / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) finding("the scratch file could not be written", path);
  return path;
}

void finding(const char* what, const std::string& message) {
  std::fprintf(stderr, "fuzz finding: %s: %s\n", what, message.c_str());
  std::abort();
}

}  // namespace skim::fuzz
