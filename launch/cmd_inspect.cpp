// skim-dist inspect: what a model on disk is (GGUF file, Hugging Face folder, quantized folder).
#include <fmt/format.h>

#include <memory>
#include <string>

#include "launch/commands.h"
#include "src/pipeline/inspect.h"

namespace skim::launch {
namespace {

struct InspectArgs {
  std::string path;
  bool json = false;
};

}  // namespace

void add_inspect_command(CLI::App& root, Action& action) {
  auto args = std::make_shared<InspectArgs>();
  auto* cmd = root.add_subcommand(
      "inspect",
      "What a model is: shape, tensor types; for a quantized folder method, options, "
      "bits and error per layer and linear");
  cmd->add_option("path", args->path, "GGUF file, Hugging Face model folder or quantized folder")
      ->required();
  cmd->add_flag("--json", args->json, "print one JSON object instead of text");
  cmd->callback([&action, args] {
    action = [args] {
      const auto d = pipeline::inspect_model(args->path);
      fmt::print("{}", args->json ? d.dump() + "\n" : pipeline::render_inspect(d));
    };
  });
}

}  // namespace skim::launch
