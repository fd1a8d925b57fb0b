#pragma once
// Fault injection for tests of the failure path:
//   SKIM_FAULT_INJECT=rank=R,at=STAGE    rank R throws when it reaches fault_point("STAGE")
//   SKIM_FAULT_INJECT=rank=*,at=STAGE    every rank does
//   SKIM_FAULT_INJECT=rank=R,at=STAGE,hit=N   only the N-th time rank R reaches STAGE (e.g. the
//                                        checkpoint of the second layer)
//   SKIM_FAULT_INJECT=rank=R,at=STAGE,delay=S  no failure: sleep S seconds each time (from the
//                                        hit-th on), to make a run outlast a time limit
// Stages are fixed names (kFaultStages, documented in docs/COMM.md): an unknown name in the
// environment is a usage error, an unknown name in the code a bug, so the list stays honest.
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace skim::launch {

// Where the pipeline calls fault_point, in the order a quantize run reaches them.
inline constexpr std::array<std::string_view, 19> kFaultStages = {
    "startup",         // launch: the Runtime and communicator are up
    "open_model",      // the model files are mapped and checked
    "calibration",     // calibration windows drawn and embedded
    "layer_load",      // one decoder layer's weights loaded
    "layer_forward",   // a layer run over the local samples
    "hessian",         // Hessians accumulated, before their reduction
    "error_table",     // error tables of the owned rows
    "linear_task",     // one linear's error table or quantization starts
    "row_kmeans",      // one row's K-means in the error tables (inside a parallel region)
    "sensitivity",     // global allocation: each linear's KL sensitivity measured
    "allocation",      // bit allocation on rank 0
    "quantize_rows",   // owned rows quantized
    "gather_rows",     // quantized rows gathered
    "write_layer",     // a packed layer written
    "checkpoint",      // a checkpoint written
    "write_output",    // config, tokenizer, report written
    "finish_cleanup",  // outputs complete; checkpoint files about to go
    "finish_rename",   // checkpoint files gone; DIR.partial about to become DIR
    "eval",            // perplexity evaluation
};

struct FaultSpec {
  int rank = -1;  // -1: every rank
  std::string stage;
  int hit = 1;           // fail the hit-th time the stage is reached
  double delay_s = 0.0;  // > 0: sleep this long at every hit from the hit-th on, never fail
};

// Parses the SKIM_FAULT_INJECT syntax; throws kUsage naming the text when malformed.
FaultSpec parse_fault_spec(std::string_view text);

// SKIM_FAULT_INJECT parsed once; nullopt when unset or empty.
const std::optional<FaultSpec>& fault_spec_from_env();

// Throws kInternal "injected fault at stage ... on host:rank" (or sleeps, with delay=) when
// SKIM_FAULT_INJECT names this rank (identity().rank) and `stage`; otherwise does nothing.
void fault_point(const char* stage);

}  // namespace skim::launch
