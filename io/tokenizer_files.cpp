// Copying a model folder's tokenizer files into another folder.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "io/atomic_file.h"
#include "io/tokenizer_export.h"
#include "src/core/error.h"

namespace skim::io {

void copy_tokenizer_files(const std::string& from_folder, const std::string& to_folder) {
  namespace fs = std::filesystem;
  const fs::path from(from_folder);
  if (!fs::is_regular_file(from / "tokenizer.json") &&
      !fs::is_regular_file(from / "tokenizer.model"))
    fail(ErrorKind::kBadInput, "{}: no tokenizer.json or tokenizer.model to copy", from_folder);
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"}) {
    const fs::path src = from / name;
    if (!fs::is_regular_file(src)) continue;
    std::ifstream in(src, std::ios::binary);
    if (!in) fail(ErrorKind::kIo, "{}: cannot open for reading", src.string());
    std::stringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) fail(ErrorKind::kIo, "{}: read failed", src.string());
    write_file_atomic((fs::path(to_folder) / name).string(), buffer.str());
  }
}

}  // namespace skim::io
