#pragma once
// Each subcommand registers its options on the root app and sets `action`, run after parsing.
// The action throws skim::Error on failure; main() turns that into the exit status.
#include <CLI/CLI.hpp>

#include <functional>

namespace skim::launch {

using Action = std::function<void()>;

void add_eval_command(CLI::App& root, Action& action);
void add_export_command(CLI::App& root, Action& action);
void add_generate_command(CLI::App& root, Action& action);
void add_inspect_command(CLI::App& root, Action& action);
void add_quantize_command(CLI::App& root, Action& action);

}  // namespace skim::launch
