// skim-dist export: a quantized folder as a Hugging Face folder for other tools (evaluation).
#include <fmt/format.h>

#include <memory>
#include <string>

#include "launch/commands.h"
#include "src/core/error.h"
#include "src/pipeline/export_hf.h"

namespace skim::launch {
namespace {

struct ExportArgs {
  std::string folder;
  std::string format = "hf";
  std::string out;
  std::string dtype = "bf16";
  int64_t shard_mib = 2048;
  bool overwrite = false;
};

void run_export(const ExportArgs& a) {
  pipeline::ExportOptions o;
  o.dtype = a.dtype == "f16" ? io::StDtype::kF16 : io::StDtype::kBF16;
  if (a.shard_mib <= 0) fail(ErrorKind::kUsage, "--shard-mib must be >= 1 (got {})", a.shard_mib);
  o.max_shard_bytes = a.shard_mib << 20;
  o.overwrite = a.overwrite;
  pipeline::export_hf(a.folder, a.out, o);
  fmt::print(stderr, "wrote {}: Hugging Face folder, weights dequantized to {}\n", a.out, a.dtype);
}

}  // namespace

void add_export_command(CLI::App& root, Action& action) {
  auto args = std::make_shared<ExportArgs>();
  auto* cmd = root.add_subcommand(
      "export",
      "A quantized folder as a Hugging Face folder (weights dequantized: full size, "
      "for evaluation with other tools)");
  cmd->add_option("folder", args->folder, "quantized model folder")->required();
  cmd->add_option("--format", args->format, "hf: config.json, tokenizer, safetensors")
      ->check(CLI::IsMember({"hf"}));
  cmd->add_option("--out", args->out, "output folder")->required();
  cmd->add_option("--dtype", args->dtype, "weights stored as bf16 or f16")
      ->check(CLI::IsMember({"bf16", "f16"}));
  cmd->add_option("--shard-mib", args->shard_mib, "largest safetensors shard, in MiB");
  cmd->add_flag("--overwrite", args->overwrite, "replace an existing output folder");
  cmd->callback([&action, args] { action = [args] { run_export(*args); }; });
}

}  // namespace skim::launch
