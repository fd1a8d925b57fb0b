#include "src/pipeline/packed_model_dir.h"

#include <fmt/format.h>

#include <filesystem>

namespace skim::pipeline {

std::string packed_layer_file(int64_t layer) {
  return fmt::format("{}/layer-{:05d}.safetensors", kPackedLayersFolder, layer);
}

std::string packed_residual_file(int64_t layer) {
  return fmt::format("{}/residual-{:05d}.safetensors", kPackedLayersFolder, layer);
}

bool is_packed_model_dir(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec) &&
         std::filesystem::is_regular_file(std::filesystem::path(path) / kPackedIndexFile, ec);
}

}  // namespace skim::pipeline
