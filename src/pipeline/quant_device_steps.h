#pragma once
// The steps of quantize that run on the GPU with --device cuda, as drop-in twins of their CPU
// functions: skim's error tables (quant::build_error_table) and gptq without act-order or group
// widths (quant::gptq_quantize). Everything else of quantize (calibration forward, Hessians,
// allocation, scaled K-means, scale training, packing) stays on the CPU for now. Each call
// selects CUDA device `device` for the calling thread (the current device is per thread), uploads
// its inputs, runs the kernels of kernels/gpu/quant_kernels.h and brings the result back. Without
// CUDA in the build they throw kUsage.
#include "src/core/tensor.h"
#include "src/quant/error_table.h"
#include "src/quant/gptq.h"
#include "src/quant/uniform_layer.h"

namespace skim::pipeline {

quant::ErrorTable cuda_error_table(int device, const Tensor& w, const Tensor& h,
                                   quant::ImportanceView f, int b_min, int b_max,
                                   quant::KMeansSolver solver);

// options.act_order and options.group_bits must be unset (kInternal otherwise: the caller
// routes those to the CPU).
quant::UniformLayer cuda_gptq_quantize(int device, const Tensor& w, const Tensor& h,
                                       const quant::GptqOptions& options);

}  // namespace skim::pipeline
