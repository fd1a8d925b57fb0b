#pragma once
// The resumable state of a quantize run, kept in the work folder (DIR.partial) beside the layer
// files already written. Every file is written under a temporary name and renamed, so a run
// killed at any point leaves either the previous state or the next one, never half of one.
//
//   state.json                 {fingerprint, world, phase, completed}
//   hidden-rank-R-layer-N.bin  rank R's calibration hidden states entering layer N = `completed`
//                              (a run on another rank count re-shards them by sample)
//   layer-report-N.json        what layer N's quantization reported (rank 0)
//   linear-N-K.bin             linear K of layer N, finished before a requested stop
//   (global allocation)        hessian-N-G.bin, etable-N.bin, bits.bin; etable-N-K.bin as above
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "src/core/tensor.h"

namespace skim::pipeline {

struct CheckpointState {
  std::string fingerprint;
  int world = 1;
  std::string phase = "layers";  // "layers" (layer mode) or "stats" / "quantize" (global)
  int64_t completed = 0;         // layers finished in this phase
};

// nullopt when the folder has no state.json; kBadInput when it cannot be parsed.
std::optional<CheckpointState> read_checkpoint_state(const std::string& work_dir);
void write_checkpoint_state(const std::string& work_dir, const CheckpointState& state);

// Raw float tensors with their shape (hidden states, Hessians), written atomically.
void write_tensor_file(const std::string& path, const Tensor& t);
Tensor read_tensor_file(const std::string& path);

void write_bytes_file(const std::string& path, const std::vector<uint8_t>& bytes);
std::vector<uint8_t> read_bytes_file(const std::string& path);

}  // namespace skim::pipeline
