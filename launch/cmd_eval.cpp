// skim-dist eval: perplexity of a model (GGUF file or Hugging Face folder) on a text file.
#include <fmt/format.h>
#include <omp.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "io/model_source.h"
#include "kernels/cpu/blas.h"
#include "launch/commands.h"
#include "launch/device_option.h"
#include "launch/qdec_option.h"
#include "launch/runtime.h"
#include "src/core/error.h"
#include "src/pipeline/packed_model_source.h"
#include "src/pipeline/perplexity.h"

namespace skim::launch {
namespace {

struct EvalArgs {
  std::string model;
  std::string text;
  int64_t seq_len = 0;
  int64_t max_windows = 0;
  bool json = false;
  int threads = 0;
  int64_t qdec = 0;  // QDEC: residual channels corrected per token (0: none)
  std::string device = "auto";
};

void run_eval(const EvalArgs& args) {
  if (args.threads < 0) fail(ErrorKind::kUsage, "--threads must be >= 1 (got {})", args.threads);
  if (args.threads > 0) {
    omp_set_num_threads(args.threads);
    kernels::set_blas_threads(args.threads);
  }
  const auto source = pipeline::open_any_model(args.model);
  pipeline::PerplexityOptions options;
  // A quantized folder runs its layers from the packed form (no dense copy of the weights).
  const auto* packed = dynamic_cast<const pipeline::PackedModelSource*>(source.get());
  check_qdec(args.qdec, packed, args.model);
  if (packed != nullptr)
    options.layer_loader = [packed, k = args.qdec](int64_t i) { return packed->load_layer(i, k); };
  options.seq_len = args.seq_len;
  options.max_windows = args.max_windows;
  const pipeline::Device device = resolve_device(args.device);
  const auto backend = pipeline::make_decoder_backend(device, source->config(), runtime().device());
  options.backend = backend.get();
  const pipeline::PerplexityResult r = pipeline::perplexity_of_file(*source, args.text, options);
  const int threads = args.threads > 0 ? args.threads : omp_get_max_threads();
  if (args.json) {
    nlohmann::json j = {
        {"perplexity", r.perplexity},
        {"mean_nll", r.mean_nll},
        {"tokens", r.predicted_tokens},
        {"text_tokens", r.text_tokens},
        {"windows", r.windows},
        {"seq_len", r.seq_len},
        {"bos_added", r.bos_added},
        {"seconds", r.seconds},
        {"layer_load_seconds", r.layer_load_seconds},
        {"tokens_per_second", static_cast<double>(r.windows * r.seq_len) / r.seconds},
        {"threads", threads},
        {"device", pipeline::device_name(device)},
        {"model", args.model},
        {"text", args.text}};
    if (packed != nullptr) {
      j["qdec"] = args.qdec;
      j["method"] = packed->method();
      j["bits_per_weight"] = packed->bits_per_weight();
    }
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print(
        "perplexity {:.4f} (mean NLL {:.5f}) over {} predicted tokens, {} windows of {}, "
        "{:.2f} s on {}; model {}, text {}\n",
        r.perplexity, r.mean_nll, r.predicted_tokens, r.windows, r.seq_len, r.seconds,
        pipeline::device_name(device), args.model, args.text);
  }
}

}  // namespace

void add_eval_command(CLI::App& root, Action& action) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = root.add_subcommand("eval", "Perplexity of a model on a text");
  cmd->add_option("--model", args->model,
                  "GGUF file, Hugging Face model folder or quantized folder")
      ->required();
  cmd->add_option("--text", args->text, "UTF-8 text file to evaluate on")->required();
  cmd->add_option("--seq-len", args->seq_len, "tokens per window")->required();
  cmd->add_option("--max-windows", args->max_windows, "evaluate only the first W windows (0: all)");
  cmd->add_flag("--json", args->json, "print one JSON object instead of a line");
  cmd->add_option("--threads", args->threads, "CPU threads (0: all cores)");
  add_qdec_option(*cmd, args->qdec);
  add_device_option(*cmd, args->device);
  cmd->callback([&action, args] { action = [args] { run_eval(*args); }; });
}

}  // namespace skim::launch
