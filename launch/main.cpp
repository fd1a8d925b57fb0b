// skim-dist: the one entry point. Parses the command line, runs the chosen subcommand, and is the
// only place where errors become messages and exit statuses.
#include <fmt/core.h>

#include <cstdio>
#include <exception>

#include "launch/commands.h"
#include "src/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"skim-dist: mixed-precision K-means quantization of large language models"};
  app.require_subcommand(1);
  skim::launch::Action action;
  skim::launch::add_eval_command(app, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    action();
    return 0;
  } catch (const skim::Error& e) {
    fmt::print(stderr, "skim-dist: error: {}\n", e.what());
    return skim::exit_status(e.kind());
  } catch (const std::exception& e) {
    fmt::print(stderr, "skim-dist: internal error: {}\n", e.what());
    return 3;
  }
}
