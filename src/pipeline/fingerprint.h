#pragma once
// The identity of a quantize run: model files, calibration text and every option that changes
// the output. A checkpoint stores it; --resume refuses a checkpoint whose fingerprint differs.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "src/pipeline/quantize_options.h"

namespace skim::pipeline {

// 64-bit FNV-1a, chained through `seed`.
uint64_t fnv1a64(std::string_view bytes, uint64_t seed = 0xcbf29ce484222325ull);

// Names, sizes and modification times of the model's files, and a hash of their first and last
// MiB and of kSampledBlocks blocks of kSampledBlock bytes spread over each file (hashing a 140 GB
// model whole would take minutes).
uint64_t model_identity(const std::string& path);

inline constexpr int64_t kSampledBlock = 64 << 10;
inline constexpr int kSampledBlocks = 64;

// Where the sampled blocks of a file of `size` bytes start: evenly spaced, the first at 0, the
// last ending at the end of the file (none when the file is shorter than a block).
std::vector<int64_t> sampled_block_offsets(int64_t size);

// Hex digest of model identity, calibration text, the output-changing options, the packed format
// version and the program's version (SKIM_VERSION, the CMake project version).
std::string run_fingerprint(const QuantizeOptions& options, std::string_view calib_text);

}  // namespace skim::pipeline
