#pragma once
// The identity of a quantize run: model files, calibration text and every option that changes
// the output. A checkpoint stores it; --resume refuses a checkpoint whose fingerprint differs.
#include <cstdint>
#include <string>
#include <string_view>

#include "src/pipeline/quantize_options.h"

namespace skim::pipeline {

// 64-bit FNV-1a, chained through `seed`.
uint64_t fnv1a64(std::string_view bytes, uint64_t seed = 0xcbf29ce484222325ull);

// Names and sizes of the model's files and a hash of their first and last MiB (hashing a 140 GB
// model whole would take minutes).
uint64_t model_identity(const std::string& path);

// Hex digest of model identity, calibration text and the output-changing options.
std::string run_fingerprint(const QuantizeOptions& options, std::string_view calib_text);

}  // namespace skim::pipeline
