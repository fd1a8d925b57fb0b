#pragma once
// `skim-dist export --format hf`: a quantized folder as a Hugging Face model folder (config.json,
// the tokenizer files, every weight dequantized and stored as fp16 or bf16 safetensors, sharded
// with model.safetensors.index.json when larger than one shard), for the tools users already
// evaluate with. The weights take their full size again: this is for evaluation, not deployment.
#include <cstdint>
#include <string>

#include "io/safetensors.h"

namespace skim::pipeline {

struct ExportOptions {
  io::StDtype dtype = io::StDtype::kBF16;  // kF16 or kBF16
  int64_t max_shard_bytes = int64_t{2} << 30;
  bool overwrite = false;
};

// Writes `out` (as out.partial, renamed when complete; an existing `out` is refused unless
// options.overwrite). Memory: one shard plus one decoder layer.
void export_hf(const std::string& packed_folder, const std::string& out,
               const ExportOptions& options);

}  // namespace skim::pipeline
