#pragma once
// The SKIM method for one linear layer (ALGORITHMS.md sections 1-3): importance f, error
// tables, greedy bit allocation (layer mode) or given bits (global mode), scaled K-means;
// and the `kmeans` baseline (fixed bits, no allocation, no scale).
#include <cstdint>
#include <span>
#include <vector>

#include "src/core/tensor.h"
#include "src/quant/allocation.h"
#include "src/quant/error_table.h"
#include "src/quant/lut_layer.h"
#include "src/quant/row_group.h"
#include "src/quant/scale_training.h"

namespace skim::quant {

enum class ImportanceKind {
  kHessianDiagonal,  // f_ij = H_jj (default)
  kUniform,          // f_ij = 1
};

struct SkimOptions {
  double bits = 3.0;  // average stored bits per weight, all overhead counted (layer mode)
  int b_min = 1;
  int b_max = 4;
  ImportanceKind importance = ImportanceKind::kHessianDiagonal;
  KMeansSolver solver = KMeansSolver::kLloyd;
  AllocationOptions allocation;
  ScaleTrainingOptions scale;
  // Fraction of each row's weights reserved (sparse_part.h): left out of the K-means, stored as
  // fp16 corrections, their bits taken from the budget.
  double outliers = 0.0;
  // Instead of a fraction, each row's count of reserved weights chosen by the allocation from
  // reserve_menu (--outliers auto).
  bool outliers_auto = false;
  // Offer grid rows (grid_fit.h) to the allocation besides LUT rows; needs q8 entries
  // (allocation.entries), whose per-row grid they are.
  bool grid_rows = false;
  // The error tables' builder; null: build_error_table (CPU).
  ErrorTableBuilder error_table_builder;
};

struct SkimPhaseTimes {
  double error_table_s = 0.0;  // K-means at every level + the error GEMMs
  double allocation_s = 0.0;
  double kmeans_s = 0.0;  // grouping steps of the scaled K-means
  double scale_training_s = 0.0;
  double refine_s = 0.0;
};

struct SkimLayerResult {
  LutLayer layer;
  BitAllocation allocation;  // layer mode only
  ScaleTrainingReport scale;
  SkimPhaseTimes times;
};

// The K-means weights of every column, shared by all rows: H_jj or 1.
std::vector<float> column_importance(const Tensor& h, ImportanceKind kind);

// The error table of the layer (what global mode gathers from every layer), of its LUT part.
ErrorTable skim_error_table(const Tensor& w, const Tensor& h, const SkimOptions& options);

// Bits stored beside the rows for reserved weights, counted in the budget before the allocation:
// the sparse part of a [rows, cols] layer with options.outliers of each row reserved, or with
// outliers_auto its row counts (the entries the allocation chooses are in the rows' costs).
int64_t reserved_bits(int64_t rows, int64_t cols, const SkimOptions& options);

// Layer mode: the layer meets options.bits on its own. h is the damped Hessian. With a row
// group, w is this rank's block of rows; the error tables of all blocks are gathered, every rank
// solves the same allocation (result.allocation: every row's) and quantizes its own rows.
SkimLayerResult quantize_skim_layer(const Tensor& w, const Tensor& h, const SkimOptions& options,
                                    RowGroup* group = nullptr);

// Global mode: the bits per row (of w's rows) come from the global allocator (choice bytes,
// allocation.h).
SkimLayerResult quantize_skim_layer_with_bits(const Tensor& w, const Tensor& h,
                                              std::span<const uint8_t> bits,
                                              const SkimOptions& options,
                                              RowGroup* group = nullptr);

// The kmeans baseline: every row at `bits`, weighted K-means with f, weighted-mean LUTs, no
// alpha (LutLayer::alpha empty).
LutLayer quantize_kmeans_layer(const Tensor& w, const Tensor& h, int bits,
                               ImportanceKind importance = ImportanceKind::kHessianDiagonal,
                               KMeansSolver solver = KMeansSolver::kLloyd);

// Stored bits of a LutLayer, all overhead counted (the same rule as the allocator).
int64_t lut_stored_bits(const LutLayer& layer);

}  // namespace skim::quant
