#pragma once
// One linear layer through the chosen method, in its packed form, with the numbers the report
// needs. The same call serves every rank: the result is serialised to move between ranks.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "src/core/tensor.h"
#include "src/pipeline/quantize_options.h"
#include "src/quant/error_table.h"
#include "src/quant/packed_layer.h"
#include "src/quant/row_group.h"

namespace skim::pipeline {

// Which packed form a method writes: a LUT per row (skim, kmeans), a uniform grid (gptq, rtn,
// slim) or a LUT per column (claq).
enum class PackedKind : uint8_t { kLut, kUniform, kColumnLut };

struct QuantizedLinear {
  std::string name;  // "model.layers.3.self_attn.q_proj"
  PackedKind kind = PackedKind::kLut;
  quant::PackedLutLayer lut;
  quant::PackedUniformLayer uniform;
  quant::PackedColumnLutLayer column;

  int64_t rows() const;
  int64_t cols() const;
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

// Quantizes this rank's block of rows w [rows of the block, in] of a linear shared by `group`,
// with the calibration Hessian h [in, in] (undamped). `bits` (every row's, from the global
// allocation; skim only) or null. The result holds the block's packed rows; error,
// energy and scale_gain are the whole linear's (equal on every rank). `device_ranks`: the
// group's communicator when it reduces device buffers (NCCL) and skim runs on CUDA; the scale
// training's loss and gradient are then summed over the ranks on the device.
QuantizedLinear quantize_linear(const std::string& name, const Tensor& w, const Tensor& h,
                                const QuantizeOptions& options, const std::vector<uint8_t>* bits,
                                quant::RowGroup& group, comm::Communicator* device_ranks = nullptr);

// The error table of skim's global mode for the block's rows, from the damped H; also returns
// the whole linear's tr(W H W^T).
quant::ErrorTable linear_error_table(const Tensor& w, const Tensor& h,
                                     const QuantizeOptions& options, double* energy,
                                     quant::RowGroup& group);

// skim: the bits of the linear's reserved weights counted before its rows' (quant::reserved_bits).
int64_t linear_reserved_bits(int64_t rows, int64_t cols, const QuantizeOptions& options);

// The blocks of one linear, in row order, as one result (stored bits recounted; times are
// block 0's). Blocks that do not fit together are refused (kBadInput, naming `what`).
QuantizedLinear merge_row_blocks(std::vector<QuantizedLinear> blocks, const std::string& what);

// The dequantized matrix of a packed result (for quantized propagation and errors).
Tensor dequantize(const QuantizedLinear& q);
// Its stored bits, all overhead counted.
int64_t stored_bits(const QuantizedLinear& q);

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
// The tables of a linear's row blocks, in row order, as one.
LinearErrorTable merge_row_blocks(std::vector<LinearErrorTable> blocks, const std::string& what);
LinearErrorTable deserialize_error_table(const uint8_t* data, size_t size, const std::string& what);

}  // namespace skim::pipeline
