#include "src/pipeline/fingerprint.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "io/packed_format.h"
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

// Name, size, modification time, the first and last MiB, and kSampledBlocks blocks spread evenly
// over the whole file: a change anywhere in a block, or of the size or time, is seen, without
// reading a 140 GB model whole.
uint64_t file_identity(const fs::path& path, uint64_t h) {
  constexpr std::streamsize kEdge = 1 << 20;
  const auto size = static_cast<std::streamsize>(fs::file_size(path));
  const auto mtime = fs::last_write_time(path).time_since_epoch().count();
  h = fnv1a64(fmt::format("{}:{}:{};", path.filename().string(), size, mtime), h);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot read", path.string());
  const auto hash_range = [&](std::streamsize offset, std::streamsize length) {
    std::string buf(static_cast<size_t>(length), '\0');
    in.seekg(offset);
    in.read(buf.data(), length);
    if (in.gcount() != length) fail(ErrorKind::kIo, "{}: read failed at {}", path.string(), offset);
    h = fnv1a64(buf, h);
  };
  hash_range(0, std::min(size, kEdge));
  if (size > kEdge) hash_range(size - kEdge, kEdge);
  if (size > 2 * kEdge) {
    for (const int64_t offset : sampled_block_offsets(size)) hash_range(offset, kSampledBlock);
  }
  return h;
}

}  // namespace

std::vector<int64_t> sampled_block_offsets(int64_t size) {
  std::vector<int64_t> offsets;
  if (size < kSampledBlock) return offsets;
  for (int i = 0; i < kSampledBlocks; ++i)
    offsets.push_back((size - kSampledBlock) / (kSampledBlocks - 1) * i);
  return offsets;
}

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
      "method={};bits={:.17g};samples={};seq={};seed={};alloc={};gw={};stok={};prop={};bmin={};"
      "bmax={};"
      "scale={};steps={};refine={};exact={};lut={};grid={};outliers={};group={};act={};"
      "damp={:.17g};"
      "residual={};format={};"
      "program={}",
      method_name(o.method), o.bits, o.calib_samples, o.calib_seq_len, o.seed,
      allocation_name(o.allocation), global_weights_name(o.global_weights), o.sensitivity_tokens,
      propagation_name(o.propagation), o.b_min, o.b_max, o.train_scale, o.scale_steps,
      o.refine_luts, o.exact_kmeans, lut_entries_name(o.lut_entries), o.grid_rows,
      o.outliers_auto ? std::string("auto") : fmt::format("{:.17g}", o.outliers), o.group_size,
      o.act_order, o.damp, o.save_residual, io::kPackedFormatVersion, SKIM_VERSION);
  // The GPU's results differ from the CPU's in rounding: a checkpoint resumes on its device only
  // (CPU runs keep the fingerprints they had before --device existed).
  uint64_t h = fnv1a64(o.device == Device::kCuda ? opts + ";device=cuda" : opts);
  h = fnv1a64(calib_text, h ^ model_identity(o.model));
  return fmt::format("{:016x}", h);
}

}  // namespace skim::pipeline
