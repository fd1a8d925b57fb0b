#pragma once
// How much each linear's error costs the model's output, measured, so that one bit budget can be
// spent across layers (--allocation global --global-weights kl). For linear k of layer l: the
// mean per-token KL(p || p~) of the next-token distribution when that linear alone is replaced by
// its K-means quantization at `bits` (Hessian-diagonal weights, fp16 LUT), divided by that
// replacement's tr(dW H dW^T) on the damped H (the unit of the error tables). To second order
// KL = 1/2 dy^T F dy, so for one linear the KL grows with its output error; the quotient puts
// the error tables of different layers on one scale: what they do to the output.
//
// Cost: one forward from layer l to the head per linear (7 per layer) on the sensitivity tokens;
// the linears are dealt round-robin to the ranks. The layer forwards, the head and the KL run on
// options.device (decoder_backend.h; on CUDA with fp16 dense weights and head). Memory per rank:
// the hidden states of its linears' perturbed streams, 4 (7 L / P) T d bytes at the end, plus the
// full model's log-probabilities of the T tokens, 4 T V bytes.
#include <cstdint>
#include <functional>
#include <vector>

#include "comm/communicator.h"
#include "io/model_source.h"
#include "src/core/tensor.h"
#include "src/model/llama_layer.h"
#include "src/pipeline/quantize_options.h"

namespace skim::pipeline {

struct SensitivityInput {
  const int32_t* tokens = nullptr;  // [windows * seq], every rank the same
  int64_t windows = 0;
  int64_t seq = 0;
  int bits = 3;  // the K-means bit-width of the replacement
  // The layer's Hessian of a linear group, undamped (every rank).
  std::function<Tensor(int64_t layer, model::LinearGroup group)> hessian;
  // Called on every rank after each layer (a safe point).
  std::function<void(int64_t layer)> after_layer = [](int64_t) {};
};

struct LinearSensitivity {
  double kl = 0.0;     // mean per-token KL of the replacement
  double error = 0.0;  // its tr(dW H dW^T)
  double weight() const { return error > 0.0 ? kl / error : 0.0; }
};

// [layer * 7 + kind], equal on every rank and for any rank count.
std::vector<LinearSensitivity> measure_sensitivity(comm::Communicator& comm,
                                                   const io::ModelSource& source,
                                                   const SensitivityInput& in,
                                                   const QuantizeOptions& options);

}  // namespace skim::pipeline
