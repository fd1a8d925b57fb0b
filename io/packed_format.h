#pragma once
// The packed model file (docs/FORMAT.md): one safetensors file holding every quantized linear
// layer in its packed form, the tensors that stay unquantized, and a __metadata__ naming the
// format, its version, the method and each layer's kind and shape, with a CRC-32 per tensor.
// The writer is atomic (a crash leaves no half-written file); the reader checks everything and
// throws kBadInput naming the file and the tensor for a file that cannot be used.
#include <map>
#include <string>

#include "io/safetensors.h"
#include "src/core/tensor.h"
#include "src/quant/packed_layer.h"
#include "src/quant/residual.h"

namespace skim::io {

// Version 2 added 8-bit LUT entries, 3 sparse parts, 4 uniform group widths, 5 QDEC residual
// layers and column-LUT layers; files of every older version are still read.
inline constexpr int kPackedFormatVersion = 7;
inline constexpr int kPackedFormatOldestVersion = 1;
inline constexpr const char* kPackedFormatName = "skim-packed";

struct PackedModel {
  std::string method;  // "skim", "kmeans", "rtn", "gptq", "slim" or "claq"
  // Keyed by layer name, the linear's weight name without ".weight"
  // ("model.layers.0.self_attn.q_proj").
  std::map<std::string, quant::PackedLutLayer> lut_layers;
  std::map<std::string, quant::PackedUniformLayer> uniform_layers;
  std::map<std::string, quant::PackedColumnLutLayer> column_lut_layers;
  // QDEC residuals of quantized linears (kept in files of their own: a name is one layer's).
  std::map<std::string, quant::ResidualLayer> residual_layers;
  // Tensors kept as they are (embeddings, norms, head), by full name, stored as `dense_dtype`.
  std::map<std::string, Tensor> dense;
  StDtype dense_dtype = StDtype::kF16;  // F32, F16 or BF16
  // Free-form extra metadata (model, calibration, ...); keys must not start with "skim.".
  std::map<std::string, std::string> metadata;
};

// Average stored bits per quantized weight over all quantized layers, everything counted
// (quant::stored_bits); 0 when there are none.
double bits_per_weight(const PackedModel& model);

// Writes atomically; throws kBadInput for an inconsistent layer (naming it), kIo when the
// folder is not writable.
void write_packed_model(const std::string& path, const PackedModel& model);

// Reads and checks a file written by write_packed_model.
PackedModel read_packed_model(const std::string& path);

// The content checks of one layer that the writer and the reader make (shapes, row widths, sizes
// of every part, finite LUT entries and scales, a true permutation): throws kBadInput naming
// `where` (a file or message), the layer and the tensor at fault.
void check_packed_layer(const quant::PackedLutLayer& layer, const std::string& name,
                        const std::string& where);
void check_packed_layer(const quant::PackedUniformLayer& layer, const std::string& name,
                        const std::string& where);
void check_packed_layer(const quant::ResidualLayer& layer, const std::string& name,
                        const std::string& where);
void check_packed_layer(const quant::PackedColumnLutLayer& layer, const std::string& name,
                        const std::string& where);

}  // namespace skim::io
