#pragma once
// `skim-dist quantize`: the whole model, streamed a decoder layer at a time over all ranks
// (ALGORITHMS.md section 4, ARCHITECTURE.md "one trip through the house").
//
// Every rank embeds its block of calibration samples and runs them through each layer; the
// Hessians of the linear inputs are reduced exactly (exact_hessian.h), so the bits never depend
// on the rank count; the seven linears of the layer are shared among the ranks by cost; rank 0
// gathers and writes the packed layer and the checkpoint. With --allocation global a first pass
// keeps every layer's error tables (rank 0) and Hessians (work folder), rank 0 solves one budget
// over the model, and a second pass quantizes with the allocated bits.
#include "comm/communicator.h"
#include "src/pipeline/quantize_options.h"

namespace skim::pipeline {

struct QuantizeSummary {
  double average_bits = 0.0;  // stored bits per quantized weight, all overhead counted
  int64_t layers = 0;
  double seconds = 0.0;
};

// Collective over `comm`. Throws skim::Error on any failure (launch/ aborts the other ranks).
QuantizeSummary run_quantize(comm::Communicator& comm, const QuantizeOptions& options,
                             const PipelineHooks& hooks);

}  // namespace skim::pipeline
