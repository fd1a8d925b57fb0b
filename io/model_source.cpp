#include "io/model_source.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "src/core/error.h"

namespace skim::io {

void ModelSource::write_tokenizer(const std::string& folder) const {
  fail(ErrorKind::kBadInput, "{}: this model source cannot write its tokenizer to {}", path(),
       folder);
}

std::unique_ptr<ModelSource> open_model(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail(ErrorKind::kBadInput, "{}: no such file or folder", path);
  if (fs::is_regular_file(st)) {
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    in.read(magic, 4);
    if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) return open_gguf_model(path);
    fail(ErrorKind::kBadInput,
         "{}: not a GGUF file (no GGUF magic) and not a Hugging Face model folder", path);
  }
  if (fs::is_directory(st)) {
    if (fs::is_regular_file(fs::path(path) / "config.json")) return open_hf_model(path);
    fail(ErrorKind::kBadInput, "{}: a folder without config.json is not a Hugging Face model",
         path);
  }
  fail(ErrorKind::kBadInput, "{}: neither a GGUF file nor a Hugging Face model folder", path);
}

}  // namespace skim::io
