#pragma once
// Where eval, quantize's calibration forward and its sensitivity pass compute. All stream a model
// layer by layer over resident hidden states (perplexity.h, quantize.h, sensitivity.h); this
// interface is that loop's device-dependent part: running a layer over the states, and for eval the
// final norm, head and NLL after the last one. The CPU implementation works on the caller's buffer
// in place; the CUDA one keeps the states in device memory, runs each layer as a
// kernels::gpu::GpuDecoderLayer and only brings back one NLL per predicted token. Everything around
// it (tokenizing, windows, layer loading) is the same code on both.
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "comm/communicator.h"
#include "src/core/model_config.h"
#include "src/model/llama_layer.h"
#include "src/model/llama_model.h"
#include "src/pipeline/device.h"

namespace skim::pipeline {

class DecoderBackend {
 public:
  virtual ~DecoderBackend() = default;
  // Makes states [tokens, hidden] (host) the resident hidden states. The CPU backend works on the
  // caller's buffer in place, so it must stay alive until store_states or window_nll; the CUDA
  // one copies it.
  virtual void load_states(float* states, int64_t tokens) = 0;
  // The embeddings of tokens [count] (host) as the resident states: the CPU backend embeds into
  // a buffer of its own, the CUDA one looks the rows up on the device (the embedding uploaded on
  // first use). A token outside the vocabulary throws kBadInput. Every call passes the same `ends`.
  virtual void embed_states(const model::LlamaModel& ends, const int32_t* tokens,
                            int64_t count) = 0;
  // The layer run_layer runs. The CUDA backend uploads it here; the CPU one keeps a reference,
  // so the layer must stay alive until the next set_layer.
  virtual void set_layer(const model::DecoderLayer& layer) = 0;
  // The set layer's `kind` linear was replaced (DecoderLayer::replace_linear): the next run uses
  // the new one. The CUDA backend uploads that linear alone; the CPU one runs the layer itself.
  virtual void update_linear(const model::DecoderLayer& layer, model::LinearKind kind) = 0;
  // Runs the set layer over the resident states: `windows` sequences of `seq` tokens, each
  // starting at position 0, `micro_windows` sequences per call (activation memory; 1 makes a
  // sequence's result independent of the others). `capture` (may be empty) gets each call's
  // linear-group inputs on the host, as DecoderLayer::forward gives them.
  virtual void run_layer(int64_t windows, int64_t seq, int64_t micro_windows,
                         const model::CaptureHook& capture) = 0;
  // The resident states back into `states`: the buffer given to load_states (the CPU backend's
  // are there already), or after embed_states any buffer of [count, hidden].
  virtual void store_states(float* states) = 0;
  // quantize's fixed-point Hessians (exact_hessian.h) of the set layer's linear-group inputs
  // (model::LinearGroup order), computed where the layer runs: the CUDA backend keeps every
  // captured input, sum and bound on the device and reduces the sums with NCCL on device buffers
  // when `comm` is NCCL. Both go one window of `seq` tokens at a time over `windows` resident
  // windows. window_bounds: each group's max over the windows of sample_bound; the resident
  // states stay as they are. window_hessians: runs the layer over the windows (the states advance
  // as in run_layer), adds each window's inputs to group g's fixed-point sums (widths[g] columns,
  // the grid of bounds[g], agreed over ranks, and total_samples) and returns every group's H
  // reduced over the ranks of `comm` (collective).
  virtual std::vector<double> window_bounds(int64_t windows, int64_t seq) = 0;
  virtual std::vector<Tensor> window_hessians(int64_t windows, int64_t seq,
                                              const std::vector<int64_t>& widths,
                                              const std::vector<double>& bounds,
                                              int64_t total_samples, comm::Communicator& comm) = 0;
  // The ends below: every call on one backend passes the same model (the CUDA backend uploads
  // its norm and head once).
  // After the last layer: the sum over the `windows` resident sequences of seq tokens of the NLL
  // of tokens[w * seq + 1 .. w * seq + seq - 1] predicted from the rows before them (final norm,
  // head, log-softmax). tokens [windows * seq] on the host. Leaves the states normed.
  virtual double window_nll(const model::LlamaModel& ends, const int32_t* tokens, int64_t windows,
                            int64_t seq) = 0;
  // The sensitivity pass's ends. reference_log_probs: the resident states (after the last layer)
  // through final norm and head, kept as the reference log-probabilities [tokens, vocab].
  // kl_to_reference: the sum over the resident states' tokens of KL(reference || softmax(head(
  // norm(states)))), the same `ends` as the reference. Both leave the states normed.
  virtual void reference_log_probs(const model::LlamaModel& ends) = 0;
  virtual double kl_to_reference(const model::LlamaModel& ends) = 0;
};

std::unique_ptr<DecoderBackend> make_cpu_decoder_backend();
// The CPU backend, or the CUDA one (below) on `cuda_device`.
std::unique_ptr<DecoderBackend> make_decoder_backend(Device device, const ModelConfig& config,
                                                     int cuda_device);

// Where generate runs: every decoder layer resident with its KV cache, then the final norm and
// the head of the last token. The model passed to a factory must outlive the backend.
class DecodeBackend {
 public:
  virtual ~DecodeBackend() = default;
  // Embeds `count` tokens (ids, host) and runs them at the next positions through every layer,
  // appending their keys and values to the cache, and writes the last token's logits [vocab]
  // (host). A token outside the vocabulary throws kBadInput.
  virtual void step(const int32_t* ids, int64_t count, float* logits) = 0;
};

// `capacity`: the most positions the cache will hold (prompt and new tokens).
std::unique_ptr<DecodeBackend> make_cpu_decode_backend(
    const model::LlamaModel& ends, const std::vector<model::DecoderLayer>& layers,
    int64_t capacity);

// On CUDA device `cuda_device` (selected for this thread). Dense linears (and the head) are stored
// fp16 (cuBLAS, fp32 accumulation), packed LUT linears (rows of 1..8 bits) run from their packed
// form, any other packed linear is dequantized to dense fp16; a QDEC linear keeps its residual on
// the device. The NLL sums exponentials in double like the CPU. Throws kUsage in a build without
// CUDA.
std::unique_ptr<DecoderBackend> make_cuda_decoder_backend(const ModelConfig& config,
                                                          int cuda_device);

// The decode backend on CUDA device `cuda_device`: every layer uploaded once (linears as for
// eval), the KV cache in device memory, one-token steps through GpuDecoderLayer::forward_step.
std::unique_ptr<DecodeBackend> make_cuda_decode_backend(
    const model::LlamaModel& ends, const std::vector<model::DecoderLayer>& layers, int64_t capacity,
    int cuda_device);

}  // namespace skim::pipeline
