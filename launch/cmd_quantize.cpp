// skim-dist quantize: the distributed pipeline (src/pipeline/quantize.h) behind its options.
#include <fmt/format.h>

#include <charconv>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <system_error>

#include "comm/cuda_devices.h"
#include "launch/commands.h"
#include "launch/device_option.h"
#include "launch/fault_injection.h"
#include "launch/logger.h"
#include "launch/runtime.h"
#include "launch/stop_request.h"
#include "src/core/error.h"
#include "src/pipeline/quantize.h"

namespace skim::launch {
namespace {

// Grid rows when --grid-rows is not given (skim with q8 or d8 entries only).
constexpr bool kGridRowsByDefault = false;

struct QuantizeArgs {
  pipeline::QuantizeOptions options;
  std::string method = "skim";
  std::string allocation;  // empty: global for skim (layer with --propagation quantized)
  std::string global_weights = "kl";
  std::string propagation = "fp";
  std::string progress = "text";
  std::string lut = "d8";
  std::string grid_rows;  // empty: yes for skim with 8-bit entries when kGridRowsByDefault
  std::string outliers = "0";
  bool lut_given = false;
  bool group_size_given = false;
  bool no_scale = false;
  bool no_refine = false;
  std::string device = "auto";
};

double parse_fraction(const char* option, const std::string& text) {
  double v = 0.0;
  const char* end = text.data() + text.size();
  const auto [stop, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || stop != end || text.empty())
    fail(ErrorKind::kUsage, "{} {}: need a fraction or auto", option, text);
  return v;
}

void run_quantize_command(QuantizeArgs& a) {
  using namespace pipeline;
  static const std::map<std::string, Method> methods = {
      {"skim", Method::kSkim}, {"kmeans", Method::kKmeans}, {"gptq", Method::kGptq},
      {"rtn", Method::kRtn},   {"slim", Method::kSlim},     {"claq", Method::kClaq}};
  QuantizeOptions& o = a.options;
  o.method = methods.at(a.method);
  o.propagation = a.propagation == "quantized" ? Propagation::kQuantized : Propagation::kFp;
  // Global allocation with kl weights gave lower held-out perplexity than per-layer allocation on
  // both texts at 3 and 4 bits (docs/RESULTS.md); it needs full-precision propagation.
  const bool global_default = o.method == Method::kSkim && o.propagation == Propagation::kFp;
  o.allocation = a.allocation == "global" || (a.allocation.empty() && global_default)
                     ? Allocation::kGlobal
                     : Allocation::kLayer;
  o.global_weights = a.global_weights == "energy" ? GlobalWeights::kEnergy : GlobalWeights::kKl;
  o.progress = a.progress == "json"   ? ProgressFormat::kJson
               : a.progress == "none" ? ProgressFormat::kNone
                                      : ProgressFormat::kText;
  if (a.lut_given && (o.method != Method::kSkim && o.method != Method::kKmeans))
    fail(ErrorKind::kUsage,
         "--lut {} applies to --method skim and kmeans only (gptq, rtn, slim and claq store "
         "no row LUT)",
         a.lut);
  if (o.method == Method::kSlim && !a.group_size_given) o.group_size = 128;
  o.lut_entries = a.lut == "q8"   ? quant::LutEntries::kQ8
                  : a.lut == "d8" ? quant::LutEntries::kD8
                                  : quant::LutEntries::kF16;
  o.grid_rows = a.grid_rows == "yes" ||
                (a.grid_rows.empty() && kGridRowsByDefault && o.method == Method::kSkim &&
                 o.lut_entries != quant::LutEntries::kF16);
  o.outliers_auto = a.outliers == "auto";
  if (!o.outliers_auto) o.outliers = parse_fraction("--outliers", a.outliers);
  o.train_scale = !a.no_scale;
  o.refine_luts = !a.no_refine;

  PipelineHooks hooks;
  hooks.fault_point = [](const char* stage) { fault_point(stage); };
  hooks.stop_requested = [] { return stop_requested(); };
  const bool json = o.progress == ProgressFormat::kJson;
  hooks.progress_line = [json](const std::string& line) {
    if (json) {
      std::fputs((line + "\n").c_str(), stdout);
      std::fflush(stdout);
    } else {
      log::info("{}", line);
    }
  };
  Runtime& rt = runtime();
  // Every method's calibration forward has a GPU path; skim, gptq and rtn also solve on the GPU
  // (docs/GPU.md, "What runs on the GPU today").
  o.device = resolve_device(a.device);
  if (o.device == Device::kCuda) {
    o.cuda_device = rt.device();
    comm::cuda_select_device(o.cuda_device);
  }
  log::info("quantize {} -> {}: method {}, bits {}, {} rank(s), {} thread(s) each, device {}",
            o.model, o.out, a.method, o.bits, rt.world(), rt.threads(), device_name(o.device));
  const QuantizeSummary s = run_quantize(rt.comm(), o, hooks);
  log::info("wrote {}: {} layers, {:.4f} bits per weight (all overhead counted), {:.1f} s", o.out,
            s.layers, s.average_bits, s.seconds);
}

}  // namespace

void add_quantize_command(CLI::App& root, Action& action) {
  auto a = std::make_shared<QuantizeArgs>();
  pipeline::QuantizeOptions& o = a->options;
  auto* cmd = root.add_subcommand("quantize", "Quantize a model with skim or a baseline");
  cmd->add_option("--model", o.model, "GGUF file or Hugging Face model folder")->required();
  cmd->add_option("--bits", o.bits,
                  "skim: average stored bits per weight, all overhead counted (e.g. 2.5, 3); "
                  "kmeans/gptq/rtn: the bit-width")
      ->required();
  cmd->add_option("--method", a->method,
                  "skim, kmeans, gptq, rtn, slim (gptq with mixed-width column groups) or claq "
                  "(gptq with a K-means LUT per column)")
      ->check(CLI::IsMember({"skim", "kmeans", "gptq", "rtn", "slim", "claq"}));
  cmd->add_option("--calib", o.calib,
                  "calibration text: a UTF-8 file, a folder of text files, or JSON Lines (.jsonl, "
                  "one document per line in field \"text\")")
      ->required();
  cmd->add_option("--calib-samples", o.calib_samples, "calibration windows")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--calib-seq-len", o.calib_seq_len, "tokens per calibration window")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--micro-batch", o.micro_batch,
                  "calibration tokens per rank held at once; above it the forward runs twice and "
                  "holds one sample's inputs (same output, less memory)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--out", o.out, "output folder")->required();
  cmd->add_option("--allocation", a->allocation,
                  "layer: each linear meets --bits; global: one budget over the model (the "
                  "default for skim with --propagation fp)")
      ->check(CLI::IsMember({"layer", "global"}));
  cmd->add_option("--global-weights", a->global_weights,
                  "global allocation: kl (each linear's measured KL per unit of error) or energy "
                  "(errors divided by tr(W H W^T))")
      ->check(CLI::IsMember({"kl", "energy"}));
  cmd->add_option("--sensitivity-tokens", o.sensitivity_tokens,
                  "global allocation with kl: calibration tokens the sensitivity is measured on")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--propagation", a->propagation,
                  "fp: layers see full-precision inputs; quantized: the quantized layers' outputs")
      ->check(CLI::IsMember({"fp", "quantized"}));
  cmd->add_flag("--resume", o.resume, "continue from the checkpoint in OUT.partial");
  cmd->add_flag("--overwrite", o.overwrite, "replace an existing output folder");
  cmd->add_option("--seed", o.seed, "seed of the calibration window draw");
  cmd->add_option("--progress", a->progress, "text, json (one object per line on stdout) or none")
      ->check(CLI::IsMember({"text", "json", "none"}));
  cmd->add_option("--b-min", o.b_min, "skim: fewest bits of a row");
  cmd->add_option("--b-max", o.b_max, "skim: most bits of a row");
  cmd->add_flag("--no-scale", a->no_scale, "skim: do not train the scaling vector");
  cmd->add_option("--scale-steps", o.scale_steps, "skim: Adam steps of the scale training");
  cmd->add_flag("--no-refine", a->no_refine,
                "skim: weighted-mean LUTs, no full-Hessian refinement");
  cmd->add_option("--lut", a->lut,
                  "skim/kmeans: LUT entries stored as f16, q8 (8-bit codes on a per-row grid) or "
                  "d8 (sorted, 8-bit increments on a finer grid)")
      ->check(CLI::IsMember({"f16", "q8", "d8"}));
  cmd->add_option("--grid-rows", a->grid_rows,
                  "skim with --lut q8 or d8: the allocation may store a row as a uniform grid (lo, "
                  "step; no LUT entries) where that buys more for its bits")
      ->check(CLI::IsMember({"yes", "no"}));
  cmd->add_flag("--exact-kmeans", o.exact_kmeans, "skim/kmeans/claq: the exact 1-D K-means solver");
  cmd->add_option("--outliers", a->outliers,
                  "skim: fraction of each row's weights kept apart from the K-means as fp16 "
                  "corrections (their bits come out of --bits), or auto: each row's count chosen "
                  "by the bit allocation; claq: of all weights, more in the columns with more "
                  "outliers (their bits added)");
  cmd->add_option("--group-size", o.group_size,
                  "gptq/rtn: columns per quantization group (0: row); slim: per group of one "
                  "width (default 128)");
  cmd->add_flag("--act-order", o.act_order, "gptq: columns by descending Hessian diagonal");
  cmd->add_option("--damp", o.damp, "relative Hessian damping");
  cmd->add_flag("--save-residual", o.save_residual,
                "keep each linear's residual W - W^ at 4 bits beside the model, for eval and "
                "generate --qdec");
  add_device_option(*cmd, a->device);
  cmd->callback([&action, a, cmd] {
    a->lut_given = cmd->count("--lut") > 0;
    a->group_size_given = cmd->count("--group-size") > 0;
    // Now, before MPI starts: a stop asked for while the job comes up must not kill the rank.
    install_stop_handlers();
    action = [a] { run_quantize_command(*a); };
  });
}

}  // namespace skim::launch
