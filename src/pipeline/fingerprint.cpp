#include "src/pipeline/fingerprint.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "src/core/error.h"

namespace skim::pipeline {
namespace fs = std::filesystem;

uint64_t fnv1a64(std::string_view bytes, uint64_t seed) {
  uint64_t h = seed;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

namespace {

uint64_t file_identity(const fs::path& path, uint64_t h) {
  constexpr std::streamsize kEdge = 1 << 20;
  const auto size = static_cast<std::streamsize>(fs::file_size(path));
  h = fnv1a64(fmt::format("{}:{};", path.filename().string(), size), h);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot read", path.string());
  std::string buf(static_cast<size_t>(std::min(size, kEdge)), '\0');
  in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
  h = fnv1a64(buf, h);
  if (size > kEdge) {
    in.seekg(size - kEdge);
    in.read(buf.data(), kEdge);
    h = fnv1a64(buf, h);
  }
  return h;
}

}  // namespace

uint64_t model_identity(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return file_identity(path, fnv1a64("file"));
  if (!fs::is_directory(path, ec)) fail(ErrorKind::kBadInput, "{}: no such model", path);
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(path))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  uint64_t h = fnv1a64("folder");
  for (const auto& f : files) h = file_identity(f, h);
  return h;
}

std::string run_fingerprint(const QuantizeOptions& o, std::string_view calib_text) {
  const std::string opts = fmt::format(
      "method={};bits={:.17g};samples={};seq={};seed={};alloc={};prop={};bmin={};bmax={};"
      "scale={};refine={};exact={};group={};act={};damp={:.17g};format=1",
      method_name(o.method), o.bits, o.calib_samples, o.calib_seq_len, o.seed,
      allocation_name(o.allocation), propagation_name(o.propagation), o.b_min, o.b_max,
      o.train_scale, o.refine_luts, o.exact_kmeans, o.group_size, o.act_order, o.damp);
  uint64_t h = fnv1a64(opts);
  h = fnv1a64(calib_text, h ^ model_identity(o.model));
  return fmt::format("{:016x}", h);
}

}  // namespace skim::pipeline
