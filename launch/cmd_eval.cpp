#include "launch/commands.h"
#include "src/core/error.h"

namespace skim::launch {

void add_eval_command(CLI::App& root, Action& action) {
  auto* cmd = root.add_subcommand("eval", "Perplexity of a model on a text");
  cmd->callback([&action] { action = [] { fail(ErrorKind::kUsage, "eval is not built yet"); }; });
}

}  // namespace skim::launch
