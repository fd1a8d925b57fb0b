#pragma once
// `skim-dist inspect`: what a model on disk is, for any model the tool reads (GGUF file, Hugging
// Face folder, quantized folder). One JSON description; the terminal text is rendered from it.
#include <nlohmann/json.hpp>
#include <string>

namespace skim::pipeline {

// {path, format ("gguf" | "huggingface" | "skim-dist"), config {...}, tensors, parameters,
//  file_bytes, tensor_types {TYPE: {tensors, parameters, bytes}}} and, for a quantized folder,
// {method, bits_per_weight, bits_histogram {b: rows}, layers [{layer, bits_per_weight,
//  relative_error, bits_histogram, linears [{name, rows, cols, bits_per_weight, bits_histogram,
//  relative_error}]}]} read from the packed files (every byte read and checksummed), plus
// {options, fingerprint, calibration_tokens, seconds, ranks} from report.json. Bits per weight
// count every stored bit (labels, LUTs, row widths, scales). Throws kBadInput for what cannot be
// read, as the other commands do.
nlohmann::json inspect_model(const std::string& path);

// Lines for a terminal (about 100 columns).
std::string render_inspect(const nlohmann::json& description);

}  // namespace skim::pipeline
