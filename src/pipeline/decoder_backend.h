#pragma once
// Where the decoder layers run. Eval streams a model layer by layer over resident hidden states
// (perplexity.h); this interface is that loop's one device-dependent part: the CPU
// implementation runs model::DecoderLayer::forward in place, the CUDA one keeps the states in
// device memory and runs each layer as a kernels::gpu::GpuDecoderLayer. Everything around it
// (tokenizing, windows, layer loading, the head and the NLL) is the same code on both devices.
#include <cstdint>
#include <memory>
#include <string_view>

#include "src/core/model_config.h"
#include "src/model/llama_layer.h"

namespace skim::pipeline {

enum class Device { kCpu, kCuda };
const char* device_name(Device device);  // "cpu" | "cuda"

// True when this build has the CUDA decoder backend (CUDA found at configure time).
bool cuda_backend_built();

class DecoderBackend {
 public:
  virtual ~DecoderBackend() = default;
  virtual Device device() const = 0;
  // Makes states [tokens, hidden] (host) the resident hidden states. The CPU backend works on the
  // caller's buffer in place, so it must stay alive until store_states; the CUDA one copies it.
  virtual void load_states(float* states, int64_t tokens) = 0;
  // Runs `layer` over the resident states: `windows` sequences of `seq` tokens, each starting at
  // position 0, `micro_windows` sequences per call (activation memory).
  virtual void run_layer(const model::DecoderLayer& layer, int64_t windows, int64_t seq,
                         int64_t micro_windows) = 0;
  // The resident states back into `states` (the buffer given to load_states).
  virtual void store_states(float* states) = 0;
};

std::unique_ptr<DecoderBackend> make_cpu_decoder_backend();

// On CUDA device `cuda_device` (selected for this thread). Dense linears are stored fp16 (cuBLAS,
// fp32 accumulation), packed LUT linears of 1..4 bits run from their packed form, any other
// packed linear is dequantized to dense fp16; a QDEC linear is a usage error (no device path
// yet). Throws kUsage in a build without CUDA.
std::unique_ptr<DecoderBackend> make_cuda_decoder_backend(const ModelConfig& config,
                                                          int cuda_device);

}  // namespace skim::pipeline
