#pragma once
// One linear layer through the chosen method, in its packed form, with the numbers the report
// needs. The same call serves every rank: the result is serialised to move between ranks.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "src/core/tensor.h"
#include "src/pipeline/quantize_options.h"
#include "src/quant/error_table.h"
#include "src/quant/packed_layer.h"

namespace skim::pipeline {

struct QuantizedLinear {
  std::string name;  // "model.layers.3.self_attn.q_proj"
  bool is_lut = true;
  quant::PackedLutLayer lut;
  quant::PackedUniformLayer uniform;
  double error = 0.0;   // tr(dW H dW^T), H undamped
  double energy = 0.0;  // tr(W H W^T): error / energy is the relative error
  // skim: error with alpha = 1 over the final error (both on the damped H): what the trained
  // scale and the LUT refinement gained; 1 for the other methods.
  double scale_gain = 1.0;
  int64_t stored_bits = 0;  // all overhead counted
  double seconds_error_table = 0.0;
  double seconds_allocation = 0.0;
  double seconds_kmeans = 0.0;
  double seconds_scale = 0.0;
  double seconds_total = 0.0;
};

// Quantizes w [out, in] with the calibration Hessian h [in, in] (undamped). `bits` is used by
// global allocation (one bit-width per row, skim only); empty otherwise.
QuantizedLinear quantize_linear(const std::string& name, const Tensor& w, const Tensor& h,
                                const QuantizeOptions& options, std::span<const uint8_t> bits = {});

// The error table of skim's global mode, from the damped H; also returns tr(W H W^T).
quant::ErrorTable linear_error_table(const Tensor& w, const Tensor& h,
                                     const QuantizeOptions& options, double* energy);

// The dequantized matrix of a packed result (for quantized propagation and errors).
Tensor dequantize(const QuantizedLinear& q);

// Blobs moved between ranks and kept in checkpoint files (linear-N-K.bin, etable-N-K.bin). The
// readers check what they read (sizes, row widths, table shape) and throw kBadInput naming
// `what` (the file or message), so a damaged file is refused, never used.
std::vector<uint8_t> serialize(const QuantizedLinear& q);
QuantizedLinear deserialize_quantized_linear(const uint8_t* data, size_t size,
                                             const std::string& what);

// Global allocation's statistics of one linear: its error table and tr(W H W^T).
struct LinearErrorTable {
  quant::ErrorTable table;
  double energy = 0.0;
};
std::vector<uint8_t> serialize(const LinearErrorTable& t);
LinearErrorTable deserialize_error_table(const uint8_t* data, size_t size, const std::string& what);

}  // namespace skim::pipeline
