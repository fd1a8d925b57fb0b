#pragma once
// `skim-dist export`: a quantized folder as a model other tools load, for evaluation with them:
// every weight dequantized, so the export takes the model's full size again.
//   hf    a Hugging Face folder: config.json, the tokenizer files, safetensors (sharded with
//         model.safetensors.index.json when larger than one shard)
//   gguf  one GGUF file as llama.cpp's converter writes it (names, Q/K row order, metadata, the
//         byte-level BPE tokenizer), norms in F32
#include <cstdint>
#include <string>

namespace skim::pipeline {

enum class ExportDtype { kF32, kF16, kBF16 };

struct ExportOptions {
  ExportDtype dtype = ExportDtype::kBF16;
  int64_t max_shard_bytes = int64_t{2} << 30;  // hf only
  bool overwrite = false;
};

// Writes the folder `out` (as out.partial, renamed when complete; an existing `out` is refused
// unless options.overwrite). Memory: one shard plus one decoder layer.
void export_hf(const std::string& packed_folder, const std::string& out,
               const ExportOptions& options);

// Writes the file `out` atomically (refused when it exists, unless options.overwrite). Memory:
// one decoder layer. Throws kBadInput for what GGUF cannot say here: a SentencePiece tokenizer,
// a pre-tokenizer without a llama.cpp name, llama3 rope scaling.
void export_gguf(const std::string& packed_folder, const std::string& out,
                 const ExportOptions& options);

}  // namespace skim::pipeline
