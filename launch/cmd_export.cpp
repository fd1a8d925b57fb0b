// skim-dist export: a quantized folder as a Hugging Face folder or a GGUF file, for evaluation
// with other tools.
#include <fmt/format.h>

#include <memory>
#include <string>

#include "launch/commands.h"
#include "src/core/error.h"
#include "src/pipeline/export_model.h"

namespace skim::launch {
namespace {

struct ExportArgs {
  std::string folder;
  std::string format = "hf";
  std::string out;
  std::string dtype;  // default by format
  int64_t shard_mib = 2048;
  bool overwrite = false;
};

void run_export(const ExportArgs& a) {
  pipeline::ExportOptions o;
  const std::string dtype = !a.dtype.empty() ? a.dtype : (a.format == "gguf" ? "f16" : "bf16");
  o.dtype = dtype == "f32"   ? pipeline::ExportDtype::kF32
            : dtype == "f16" ? pipeline::ExportDtype::kF16
                             : pipeline::ExportDtype::kBF16;
  if (a.shard_mib <= 0) fail(ErrorKind::kUsage, "--shard-mib must be >= 1 (got {})", a.shard_mib);
  o.max_shard_bytes = a.shard_mib << 20;
  o.overwrite = a.overwrite;
  if (a.format == "gguf")
    pipeline::export_gguf(a.folder, a.out, o);
  else
    pipeline::export_hf(a.folder, a.out, o);
  fmt::print(stderr, "wrote {}: {} with the weights dequantized to {}\n", a.out,
             a.format == "gguf" ? "GGUF file" : "Hugging Face folder", dtype);
}

}  // namespace

void add_export_command(CLI::App& root, Action& action) {
  auto args = std::make_shared<ExportArgs>();
  auto* cmd = root.add_subcommand(
      "export",
      "A quantized folder as a Hugging Face folder or a GGUF file (weights dequantized: full "
      "size, for evaluation with other tools)");
  cmd->add_option("folder", args->folder, "quantized model folder")->required();
  cmd->add_option("--format", args->format,
                  "hf: config.json, tokenizer, safetensors; gguf: one file for llama.cpp")
      ->check(CLI::IsMember({"hf", "gguf"}));
  cmd->add_option("--out", args->out, "output folder (hf) or file (gguf)")->required();
  cmd->add_option("--dtype", args->dtype,
                  "weights stored as bf16, f16 or f32 (default: hf bf16, gguf f16)")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  cmd->add_option("--shard-mib", args->shard_mib, "hf: largest safetensors shard, in MiB");
  cmd->add_flag("--overwrite", args->overwrite, "replace an existing output");
  cmd->callback([&action, args] { action = [args] { run_export(*args); }; });
}

}  // namespace skim::launch
