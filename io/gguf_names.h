#pragma once
// How llama.cpp's converter stores a LLaMA-family model in GGUF, in both directions: tensor names
// (GGUF <-> Hugging Face) and the row order of Q and K. The GGUF reader and the GGUF export share
// these, so what one writes the other reads back.
#include <optional>
#include <string>

#include "src/core/tensor.h"

namespace skim::io {

// Which rotary row order a tensor has in GGUF: Q and K (weights and biases) are permuted.
enum class QkRows { kNone, kQ, kK };

// Hugging Face name of a GGUF tensor name; nullopt for tensors a LLaMA decoder does not use.
std::optional<std::string> hf_tensor_name(const std::string& gguf, QkRows* rows);
// GGUF name of a Hugging Face tensor name that hf_tensor_name maps to; kInternal otherwise.
std::string gguf_tensor_name(const std::string& hf);

// The converter stores the Q and K rows of head h as (h, i, p) where Hugging Face has (h, p, i),
// p the rotary half and i the index inside it. `to_gguf` applies that order, else undoes it.
Tensor reorder_qk_rows(const Tensor& t, int64_t n_heads, bool to_gguf);

}  // namespace skim::io
