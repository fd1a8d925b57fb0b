#pragma once
// `--qdec K` of eval and generate: QDEC's residual correction of the K input channels of largest
// magnitude per token (src/pipeline/packed_linear.h, QdecLinear).
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "src/pipeline/packed_model_source.h"

namespace skim::launch {

void add_qdec_option(CLI::App& cmd, int64_t& channels);

// A usage error (exit 2) for K < 0, or K > 0 with a model that is not a quantized folder with
// residuals (quantize --save-residual).
void check_qdec(int64_t channels, const pipeline::PackedModelSource* packed,
                const std::string& model);

}  // namespace skim::launch
