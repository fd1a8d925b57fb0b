#pragma once
// `--device auto|cpu|cuda` of quantize, eval and generate: where a command computes.
#include <CLI/CLI.hpp>

#include <string>
#include <string_view>

#include "src/pipeline/decoder_backend.h"

namespace skim::launch {

enum class DeviceChoice { kAuto, kCpu, kCuda };

// "auto" | "cpu" | "cuda"; throws kUsage otherwise.
DeviceChoice parse_device_choice(std::string_view text);

void add_device_option(CLI::App& cmd, std::string& text);

// What a choice is resolved against; the same on every rank (every_rank_has_gpu is agreed over
// the job), so every rank resolves alike and a refusal stops all of them.
struct DeviceFacts {
  bool cuda_built = false;          // the build has the CUDA backend
  bool every_rank_has_gpu = false;  // each rank of the job sees at least one GPU
  int gpus_here = 0;                // GPUs this rank sees (for the message)
};

// cpu: the CPU. cuda: CUDA, or kUsage saying why not (no CUDA in the build, or a rank without a
// GPU). auto: CUDA when cuda would be served, else the CPU.
pipeline::Device resolve_device(DeviceChoice choice, const DeviceFacts& facts);

// resolve_device with this process's runtime (launch/runtime.h).
pipeline::Device resolve_device(std::string_view choice);

}  // namespace skim::launch
