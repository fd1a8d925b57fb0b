#pragma once
// The steps of quantize that run on the GPU with --device cuda, as drop-in twins of their CPU
// functions: skim's error tables (quant::build_error_table), the loss and gradient of its scale
// training (quant's ScaleObjective), its grouping K-means and the normal equations of its LUT
// refinement; rtn (quant::rtn_quantize) and gptq (quant::gptq_quantize; with act-order the
// problem is permuted on the host). The calibration forward and the Hessians run in the CUDA
// decoder backend (decoder_backend.h); allocation, grid-row fits, the refinement's small solves and
// packing stay on the CPU for now.
// Each call selects CUDA device `device` for the calling thread (the current device is per
// thread), uploads its inputs, runs the kernels of kernels/gpu/quant_kernels.h and brings the
// result back. Without CUDA in the build they throw kUsage.
#include <cstdint>
#include <span>
#include <vector>

#include "comm/communicator.h"
#include "src/core/tensor.h"
#include "src/quant/error_table.h"
#include "src/quant/gptq.h"
#include "src/quant/rtn.h"
#include "src/quant/scale_training.h"
#include "src/quant/uniform_layer.h"

namespace skim::pipeline {

quant::ErrorTable cuda_error_table(int device, const Tensor& w, const Tensor& h,
                                   quant::ImportanceView f, int b_min, int b_max,
                                   quant::KMeansSolver solver, quant::LutEntries entries);

// The scale training's objective for this rank's rows of `p` (twin: the CPU's ScaleObjective):
// the problem uploaded once, then per call log alpha up and the loss and gradient down. With
// `ranks` (a communicator that reduces device buffers: NCCL) the loss and gradient are summed over
// its ranks on the device (gathered, then added in rank order: every rank gets the same bits)
// before they come down, so the objective is the whole group's (objective_sums_group); every rank
// must then call it, a rank without rows too.
quant::ScaleObjectiveFn cuda_scale_objective(int device, const quant::ScaleProblem<float>& p,
                                             comm::Communicator* ranks = nullptr);

// The scaled grouping step's K-means of every row (twin: kmeans1d per row in group_rows,
// handed in as ScaleTrainingOptions::row_kmeans): the rows, weights, alpha and widths uploaded,
// labels and centroids brought back.
void cuda_row_kmeans(int device, const Tensor& w, quant::ImportanceView f, std::span<const int> k,
                     std::span<const float> alpha, quant::KMeansSolver solver,
                     std::vector<uint8_t>& labels, std::vector<std::vector<double>>& centroids);

// The LUT refinement's normal equations (twin: quant::cpu_refine_systems, handed in as
// ScaleTrainingOptions::refine_systems): W, H, the labels and 1 / alpha uploaded once per linear;
// per block of rows P is built from the labels on the device, multiplied by H and summed into
// the rows' K x K systems there, and only those come back (the solves run on the host).
quant::RefineSystemsFn cuda_refine_systems(int device, const quant::RefineProblem& p);

// rtn's codes and grids of every group on the device (twin: quant::rtn_quantize, the same bits);
// the input checks run on the host first.
quant::UniformLayer cuda_rtn_quantize(int device, const Tensor& w,
                                      const quant::RtnOptions& options);

// options.group_bits and options.clip_search must be unset (slim's; kInternal otherwise).
quant::UniformLayer cuda_gptq_quantize(int device, const Tensor& w, const Tensor& h,
                                       const quant::GptqOptions& options);

}  // namespace skim::pipeline
