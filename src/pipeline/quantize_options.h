#pragma once
// Everything `skim-dist quantize` can be told. Options that change the output enter the
// checkpoint fingerprint (quantize.cpp, fingerprint_options); the others (ranks, threads,
// progress format) do not, so a resumed run may differ in them.
#include <cstdint>
#include <functional>
#include <string>

#include "src/pipeline/device.h"
#include "src/quant/lut_layer.h"

namespace skim::pipeline {

enum class Method { kSkim, kKmeans, kGptq, kRtn, kSlim, kClaq };
enum class Allocation { kLayer, kGlobal };
// How global allocation puts different linears' errors on one scale (src/pipeline/sensitivity.h).
enum class GlobalWeights { kKl, kEnergy };
enum class Propagation { kFp, kQuantized };
enum class ProgressFormat { kText, kJson, kNone };

const char* method_name(Method m);
const char* allocation_name(Allocation a);
const char* global_weights_name(GlobalWeights w);
const char* propagation_name(Propagation p);
const char* lut_entries_name(quant::LutEntries e);

struct QuantizeOptions {
  std::string model;
  std::string calib;
  std::string out;
  Method method = Method::kSkim;
  double bits = 3.0;  // skim: average stored bits; the others: the integer (average) bit-width
  int64_t calib_samples = 128;
  int64_t calib_seq_len = 2048;
  // Calibration tokens per rank above which the forward keeps one sample's captured inputs at a
  // time (and runs twice); the output bytes do not depend on it.
  int64_t micro_batch = 32768;
  uint64_t seed = 0;
  Allocation allocation = Allocation::kLayer;
  // Global allocation: each linear's errors times its measured KL per unit of error (kl), or
  // divided by tr(W H W^T) (energy); kl uses the first `sensitivity_tokens` calibration tokens.
  GlobalWeights global_weights = GlobalWeights::kKl;
  int64_t sensitivity_tokens = 512;
  Propagation propagation = Propagation::kFp;
  bool resume = false;
  bool overwrite = false;
  ProgressFormat progress = ProgressFormat::kText;

  // skim
  int b_min = 1;
  int b_max = 4;
  bool train_scale = true;
  // Adam steps of the scale training (the learning-rate schedule scales with them): 15 gave a
  // lower held-out perplexity than 8, 30 or 120 on SmolLM2 (docs/RESULTS.md "CPU speed").
  int scale_steps = 15;
  bool refine_luts = true;
  bool exact_kmeans = false;
  // skim: fraction of each row's weights reserved as fp16 corrections (src/quant/sparse_part.h);
  // claq: of all weights, more in the columns with more outliers (src/quant/claq.h).
  double outliers = 0.0;
  // skim (--outliers auto): each row's count of reserved weights chosen by the allocation.
  bool outliers_auto = false;
  // skim / kmeans: how LUT entries are stored (and what the allocation charges for them). q8:
  // lower perplexity than f16 on both held-out texts at 3, 4 and 4.25 bits; d8 (the same bits):
  // lower than q8 on both at 3 and 4 bits (skim, global kl; docs/RESULTS.md).
  quant::LutEntries lut_entries = quant::LutEntries::kD8;
  // skim with q8 or d8 entries: the allocation may also make a row a grid row (its LUT its
  // 8-bit grid itself, no entries stored; src/quant/grid_fit.h).
  bool grid_rows = false;
  // gptq / rtn / slim (slim: groups of mixed width; the command line's default for it is 128)
  int64_t group_size = 0;
  bool act_order = false;
  double damp = 0.01;
  // QDEC: keep each quantized linear's residual W - W^ at 4 bits beside the model
  // (src/quant/residual.h), for eval / generate --qdec.
  bool save_residual = false;
  // Where the per-linear solves run (src/pipeline/quant_device_steps.h): the CPU, or CUDA device
  // `cuda_device` for skim's error tables and gptq without act-order.
  Device device = Device::kCpu;
  int cuda_device = -1;
};

// Callbacks into launch/ (which the pipeline may not include): fault injection, the line printer
// for progress, and whether a signal asked this rank to stop (0, or the signal's number).
struct PipelineHooks {
  std::function<void(const char* stage)> fault_point = [](const char*) {};
  std::function<int()> stop_requested = [] { return 0; };
  std::function<void(const std::string& line)> progress_line = [](const std::string&) {};
};

}  // namespace skim::pipeline
