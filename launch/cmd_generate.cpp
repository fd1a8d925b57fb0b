// skim-dist generate: continue a prompt with a model (GGUF file, Hugging Face folder or a
// quantized folder written by `skim-dist quantize`, run from its packed form).
#include <fmt/format.h>
#include <omp.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "kernels/cpu/blas.h"
#include "launch/commands.h"
#include "launch/device_option.h"
#include "launch/qdec_option.h"
#include "launch/runtime.h"
#include "src/core/error.h"
#include "src/pipeline/generate.h"
#include "src/pipeline/packed_model_source.h"

namespace skim::launch {
namespace {

struct GenerateArgs {
  std::string model;
  std::string prompt;
  int64_t tokens = 32;
  double temperature = 0.0;
  uint64_t seed = 0;
  bool json = false;
  int threads = 0;
  int64_t qdec = 0;  // QDEC: residual channels corrected per token (0: none)
  std::string device = "auto";
};

void run_generate(const GenerateArgs& args) {
  if (args.threads < 0) fail(ErrorKind::kUsage, "--threads must be >= 1 (got {})", args.threads);
  if (args.temperature < 0)
    fail(ErrorKind::kUsage, "--temperature must be >= 0 (got {})", args.temperature);
  if (args.threads > 0) {
    omp_set_num_threads(args.threads);
    kernels::set_blas_threads(args.threads);
  }
  const pipeline::Device device = resolve_device(args.device);
  const auto source = pipeline::open_any_model(args.model);
  pipeline::Generator::LayerLoader loader;
  const auto* packed = dynamic_cast<const pipeline::PackedModelSource*>(source.get());
  check_qdec(args.qdec, packed, args.model);
  if (packed != nullptr)
    loader = [packed, k = args.qdec](int64_t i) { return packed->load_layer(i, k); };
  pipeline::GenerateOptions options;
  options.max_new_tokens = args.tokens;
  options.temperature = args.temperature;
  options.seed = args.seed;
  options.device = device;
  options.cuda_device = runtime().device();
  const pipeline::GenerateResult r = pipeline::generate_text(*source, args.prompt, options, loader);
  if (args.json) {
    nlohmann::json j = {{"model", args.model},
                        {"prompt", args.prompt},
                        {"text", r.text},
                        {"prompt_tokens", r.prompt_ids.size()},
                        {"new_tokens", r.new_ids.size()},
                        {"new_ids", r.new_ids},
                        {"stopped_at_eos", r.stopped_at_eos},
                        {"temperature", args.temperature},
                        {"seed", args.seed},
                        {"device", pipeline::device_name(device)},
                        {"load_seconds", r.load_seconds},
                        {"prefill_seconds", r.prefill_seconds},
                        {"decode_seconds", r.decode_seconds},
                        {"prefill_tokens_per_second", r.prefill_tokens_per_second()},
                        {"decode_tokens_per_second", r.decode_tokens_per_second()},
                        {"threads", args.threads > 0 ? args.threads : omp_get_max_threads()}};
    if (packed != nullptr) {
      j["qdec"] = args.qdec;
      j["method"] = packed->method();
      j["bits_per_weight"] = packed->bits_per_weight();
    }
    // Replace invalid UTF-8 (a continuation cut mid-character) instead of throwing.
    fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  } else {
    fmt::print("{}{}\n", args.prompt, r.text);
    std::fflush(stdout);  // the text before the timing line on a shared terminal
    fmt::print(stderr,
               "prefill {} tokens in {:.3f} s ({:.1f} tokens/s), decode {} tokens in {:.3f} s "
               "({:.1f} tokens/s), load {:.2f} s\n",
               r.prompt_ids.size(), r.prefill_seconds, r.prefill_tokens_per_second(),
               r.new_ids.empty() ? 0 : r.new_ids.size() - 1, r.decode_seconds,
               r.decode_tokens_per_second(), r.load_seconds);
  }
}

}  // namespace

void add_generate_command(CLI::App& root, Action& action) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = root.add_subcommand("generate", "Continue a prompt (greedy unless --temperature)");
  cmd->add_option("--model", args->model,
                  "GGUF file, Hugging Face model folder or quantized model folder")
      ->required();
  cmd->add_option("--prompt", args->prompt, "text to continue")->required();
  cmd->add_option("--tokens", args->tokens, "new tokens to generate (default 32)");
  cmd->add_option("--temperature", args->temperature, "0 (default): greedy; > 0: sample");
  cmd->add_option("--seed", args->seed, "random seed for sampling (default 0)");
  cmd->add_flag("--json", args->json, "print one JSON object instead of text");
  cmd->add_option("--threads", args->threads, "CPU threads (0: all cores)");
  add_qdec_option(*cmd, args->qdec);
  add_device_option(*cmd, args->device);
  cmd->callback([&action, args] { action = [args] { run_generate(*args); }; });
}

}  // namespace skim::launch
