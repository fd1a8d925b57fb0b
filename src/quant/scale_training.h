#pragma once
// SKIM's trainable scaling vector (Algorithm 2): one positive factor alpha_j per input column,
// shared by all rows. Row i is clustered in the scaled space u_ij = alpha_j w_ij with K-means
// weights g_ij = f_ij / alpha_j^2; with the labels frozen, the centroids are the g-weighted
// means, W^_ij = c_{i, l_ij} / alpha_j, and log alpha is trained by Adam on the full-Hessian
// error tr((W - W^) H (W - W^)^T) with its analytic gradient.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "src/core/tensor.h"
#include "src/quant/error_table.h"
#include "src/quant/kmeans1d.h"
#include "src/quant/lut_layer.h"
#include "src/quant/lut_refinement.h"
#include "src/quant/row_group.h"

namespace skim::quant {

template <typename T>
struct ScaleProblem;

// The loss and gradient (grad may be null) of one rank's rows for log alpha, not yet summed over
// the row group; what a device twin of the objective supplies.
using ScaleObjectiveFn =
    std::function<double(std::span<const double> log_alpha, std::vector<double>* grad)>;
// Makes one for a frozen-label problem that outlives it (quant/ may not depend on the GPU code,
// so the pipeline hands the device's in).
using ScaleObjectiveMaker = std::function<ScaleObjectiveFn(const ScaleProblem<float>&)>;

// The grouping step's weighted K-means of every row in the scaled space (u_ij = alpha_j w_ij,
// weights f_ij / alpha_j^2, k[i] clusters): labels [rows * cols] and each row's k[i] centroids
// ascending, as kmeans1d gives them per row (grid rows are then refitted on the CPU). What a
// device twin of the CPU's loop supplies.
using RowKMeansFn =
    std::function<void(const Tensor& w, ImportanceView f, std::span<const int> k,
                       std::span<const float> alpha, KMeansSolver solver,
                       std::vector<uint8_t>& labels, std::vector<std::vector<double>>& centroids)>;

struct ScaleTrainingOptions {
  bool train = true;  // false: alpha = 1 (still stored, so the bit cost is the same)
  // Adam on log alpha. Adam moves each log alpha by about lr per step, so the schedule follows
  // the step count: lr = 1.2 / steps, times lr_decay at each third, covers the same distance
  // whatever the count (120 steps at 0.01 was the first default; 15 holds out better,
  // docs/RESULTS.md "CPU speed").
  int steps = 15;
  double lr_decay = 0.5;
  double lr() const { return 1.2 / std::max(1, steps); }
  int lr_decay_every() const { return std::max(1, steps / 3); }
  // After the final re-grouping, replace each row's weighted-mean LUT by the LUT that
  // minimises the row's full-Hessian error with the labels fixed (a K x K solve per row).
  bool refine_full_hessian = true;
  KMeansSolver solver = KMeansSolver::kLloyd;
  // The Adam steps' objective; null: the CPU's (partials of 16-row chunks, the same bits at any
  // rank count). A maker's per-rank sums are added over the group in rank order.
  ScaleObjectiveMaker objective_maker;
  // The maker's objective returns the whole row group's loss and gradient (it sums over the ranks
  // itself, e.g. with NCCL on device buffers), the same on every rank; not added again here.
  bool objective_sums_group = false;
  // The grouping steps' K-means of the LUT rows; null: kmeans1d per row on the CPU. Grid rows
  // are fitted on the CPU either way.
  RowKMeansFn row_kmeans;
  // The refinement's normal equations; null: cpu_refine_systems.
  RefineSystemsMaker refine_systems;
};

// The frozen-label problem: W [rows, cols] and H [cols, cols] row-major, f the K-means
// weights, labels [rows * cols], k[i] = LUT size of row i.
template <typename T>
struct ScaleProblem {
  int64_t rows = 0;
  int64_t cols = 0;
  const T* w = nullptr;
  const T* h = nullptr;
  ImportanceView f;
  const uint8_t* labels = nullptr;
  const int* k = nullptr;
};

// Loss tr(dW H dW^T) at the weighted-mean centroids for log alpha, and (when grad is not null)
// its gradient with respect to log alpha. float: fp32 GEMMs; double: the test reference.
// With a row group, p holds this rank's block of rows and the loss and gradient are the whole
// layer's (every rank gets them).
template <typename T>
double scale_loss_and_grad(const ScaleProblem<T>& p, std::span<const double> log_alpha,
                           std::vector<double>* grad, RowGroup* group = nullptr);

struct ScaleTrainingReport {
  double error_unscaled = 0.0;  // L-full with alpha = 1 and weighted-mean LUTs
  double error_trained = 0.0;   // L-full after training and re-grouping, weighted-mean LUTs
  double error_final = 0.0;     // L-full of the returned layer (after refinement, fp16 values)
  double loss_first = 0.0;      // training loss at step 0 and after the last step
  double loss_last = 0.0;
  bool kept_unscaled = false;  // the trained alpha lost to alpha = 1 and was dropped
  double kmeans_s = 0.0;       // time in the grouping steps
  double training_s = 0.0;     // time in the Adam steps
  double refine_s = 0.0;       // time in the full-Hessian LUT refinement
};

// The whole Section 3 for one layer with the given bits per row (choice bytes, allocation.h:
// grid rows are grouped by fit_grid and refined as grids; the alpha training treats their LUTs,
// like all others, as the free weighted means): group, train alpha, round alpha to fp16,
// re-group, LUTs (weighted means or refined), fp16 codebooks. With a row group,
// w, bits (and f, when it has a row per weight row) are this rank's block of rows; the gradient
// and the errors that choose between candidates are summed over the whole group, so every rank
// trains the same alpha and the rows come out as on one process. The report's errors are the
// whole layer's.
LutLayer scaled_kmeans(const Tensor& w, const Tensor& h, ImportanceView f,
                       std::span<const uint8_t> bits, const ScaleTrainingOptions& options,
                       ScaleTrainingReport* report = nullptr, RowGroup* group = nullptr);

}  // namespace skim::quant
