// skim-dist: the one entry point. Parses the command line, then hands the chosen subcommand to
// run_guarded (launch/runtime.h): the Runtime (ranks, GPU, threads, communicator) comes up, the
// command runs, and any error on any rank becomes one message, an abort of every rank and an
// exit status.
#include <malloc.h>

#include <CLI/CLI.hpp>

#include <string>

#include "launch/build_info.h"
#include "launch/commands.h"
#include "launch/runtime.h"

int main(int argc, char** argv) {
  // Each decoder layer allocates activation buffers of tens of MB and frees them: keep such
  // blocks in the heap (up to glibc's 32 MiB limit) instead of a fresh mmap, whose pages the
  // kernel zero-fills on every layer.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  CLI::App app{"skim-dist: mixed-precision K-means quantization of large language models"};
  // Every option's default shows in --help (subcommands inherit this).
  app.option_defaults()->always_capture_default();
  app.require_subcommand(1);
  app.fallthrough();  // --comm may also follow the subcommand
  app.set_version_flag("--version", SKIM_VERSION_STRING "\n" SKIM_BUILD_FEATURES);
  std::string comm = "auto";
  app.add_option("--comm", comm,
                 "Communicator: auto (NCCL if every rank has a GPU, else MPI when started by "
                 "mpirun/srun, else none), mpi, nccl, none")
      ->check(CLI::IsMember({"auto", "mpi", "nccl", "none"}));
  skim::launch::Action action;
  skim::launch::add_eval_command(app, action);
  skim::launch::add_export_command(app, action);
  skim::launch::add_generate_command(app, action);
  skim::launch::add_inspect_command(app, action);
  skim::launch::add_quantize_command(app, action);

  // A required option has no default to show.
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    for (CLI::Option* opt : sub->get_options())
      if (opt->get_required()) opt->default_str("");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return skim::launch::run_guarded(skim::launch::parse_comm_choice(comm),
                                   [&](skim::launch::Runtime&) { action(); });
}
