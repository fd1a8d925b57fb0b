#include "src/quant/skim_layer.h"

#include <chrono>
#include <optional>

#include "src/core/error.h"
#include "src/core/half.h"
#include "src/core/parallel_errors.h"
#include "src/core/stopwatch.h"

namespace skim::quant {
namespace {

// Below this much work a parallel region costs more than it saves: idle OpenBLAS and OpenMP
// threads spin, and on few cores they steal each other's time.
constexpr int64_t kParallelMinWork = int64_t{1} << 20;

void check_layer(const Tensor& w, const Tensor& h) {
  if (w.ndim() != 2 || h.ndim() != 2 || h.dim(0) != w.dim(1) || h.dim(1) != w.dim(1))
    fail(ErrorKind::kInternal, "skim layer: W {} and H {} do not match", w.shape_string(),
         h.shape_string());
}

}  // namespace

std::vector<float> column_importance(const Tensor& h, ImportanceKind kind) {
  std::vector<float> f(static_cast<size_t>(h.dim(0)), 1.0f);
  if (kind == ImportanceKind::kHessianDiagonal)
    for (int64_t j = 0; j < h.dim(0); ++j) f[j] = h.at(j, j);
  return f;
}

namespace {

bool offers_grid_rows(const SkimOptions& o) {
  return o.grid_rows && o.allocation.entries != LutEntries::kF16;
}

// The reserved entries of each row (a fixed fraction, or the count its choice byte's level
// picks from reserve_menu) and w with them set to the row mean; nothing (no copy of w) when no
// weight is reserved and none could be.
std::optional<OutlierSplit> reserve(const Tensor& w, std::span<const float> f,
                                    std::span<const uint8_t> choices, const SkimOptions& o) {
  if (o.outliers_auto) {
    const auto menu = reserve_menu(w.dim(1));
    std::vector<int64_t> counts(choices.size(), 0);
    for (size_t i = 0; i < choices.size(); ++i) {
      const int level = choice_reserve_level(choices[i]);
      if (level > static_cast<int>(menu.size()))
        fail(ErrorKind::kInternal, "skim: row {} has reserve level {} of {}", i, level,
             menu.size());
      if (level > 0) counts[i] = menu[static_cast<size_t>(level - 1)];
    }
    return split_outliers(w, f, counts);
  }
  const int64_t per_row = reserved_per_row(w.dim(1), o.outliers);
  if (per_row == 0) return std::nullopt;
  return split_outliers(w, f, per_row);
}

}  // namespace

ErrorTable skim_error_table(const Tensor& w, const Tensor& h, const SkimOptions& options) {
  check_layer(w, h);
  const auto f = column_importance(h, options.importance);
  const auto& build = options.error_table_builder ? options.error_table_builder
                                                  : ErrorTableBuilder(build_error_table);
  const auto table_of = [&](const Tensor& dense, const SparsePart* exact) {
    return build(dense, h, {f.data(), 0}, options.b_min, options.b_max, options.solver,
                 options.allocation.entries, exact);
  };
  if (options.outliers_auto) {
    ErrorTable table = table_of(w, nullptr);
    if (offers_grid_rows(options)) add_grid_errors(table, w, h, {f.data(), 0});
    table.reserve_counts = reserve_menu(w.dim(1));
    for (const int64_t count : table.reserve_counts) {
      const auto split = split_outliers(w, f, count);
      table.e_reserved.push_back(table_of(split.dense, &split.positions).e);
    }
    return table;
  }
  const std::vector<uint8_t> none;
  const auto split = reserve(w, f, none, options);
  const Tensor& dense = split ? split->dense : w;
  ErrorTable table = table_of(dense, split ? &split->positions : nullptr);
  if (offers_grid_rows(options)) add_grid_errors(table, dense, h, {f.data(), 0});
  return table;
}

int64_t reserved_bits(int64_t rows, int64_t cols, const SkimOptions& options) {
  if (options.outliers_auto) return rows * sparse_count_bits(reserve_menu(cols).back());
  const int64_t per_row = reserved_per_row(cols, options.outliers);
  return sparse_part_bits(rows, cols, rows * per_row, per_row);
}

SkimLayerResult quantize_skim_layer_with_bits(const Tensor& w, const Tensor& h,
                                              std::span<const uint8_t> bits,
                                              const SkimOptions& options, RowGroup* group) {
  check_layer(w, h);
  const auto f = column_importance(h, options.importance);
  auto split = reserve(w, f, bits, options);
  SkimLayerResult out;
  out.layer = scaled_kmeans(split ? split->dense : w, h, {f.data(), 0}, bits, options.scale,
                            &out.scale, group);
  if (split && w.dim(0) > 0) {
    out.layer.sparse = std::move(split->positions);
    set_sparse_corrections(out.layer, w);  // again after any change of the LUTs (q8 storage)
  }
  out.times.kmeans_s = out.scale.kmeans_s;
  out.times.scale_training_s = out.scale.training_s;
  out.times.refine_s = out.scale.refine_s;
  return out;
}

SkimLayerResult quantize_skim_layer(const Tensor& w, const Tensor& h, const SkimOptions& options,
                                    RowGroup* group) {
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  ErrorTable table = skim_error_table(w, h, options);
  const double table_s = seconds_since(t0);
  t0 = clock::now();
  // Every rank allocates the same bits from the whole table.
  WholeRows whole(w.dim(0));
  RowGroup& rows = group != nullptr ? *group : whole;
  const RowBlock block = rows.block();
  table.e = rows.all_gather(table.e);
  if (offers_grid_rows(options)) table.e_grid = rows.all_gather(table.e_grid);
  for (auto& part : table.e_reserved) part = rows.all_gather(part);
  table.rows = block.total;
  if (static_cast<int64_t>(table.e.size()) != table.rows * table.levels())
    fail(ErrorKind::kInternal, "skim: gathered error table of {} entries for {} rows",
         table.e.size(), table.rows);
  BitAllocation alloc = allocate_bits(table, w.dim(1), options.bits, true, options.allocation,
                                      reserved_bits(table.rows, w.dim(1), options));
  const double alloc_s = seconds_since(t0);
  const std::span<const uint8_t> mine(alloc.bits.data() + block.first,
                                      static_cast<size_t>(block.count));
  SkimLayerResult out = quantize_skim_layer_with_bits(w, h, mine, options, group);
  out.allocation = std::move(alloc);
  out.times.error_table_s = table_s;
  out.times.allocation_s = alloc_s;
  return out;
}

LutLayer quantize_kmeans_layer(const Tensor& w, const Tensor& h, int bits,
                               ImportanceKind importance, KMeansSolver solver) {
  check_layer(w, h);
  if (bits < 1 || bits > 8) fail(ErrorKind::kUsage, "kmeans: {} bits outside [1, 8]", bits);
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const int k = 1 << bits;
  const auto f = column_importance(h, importance);
  LutLayer out;
  out.rows = rows;
  out.cols = cols;
  out.bits.assign(static_cast<size_t>(rows), static_cast<uint8_t>(bits));
  out.codebook_offset.resize(rows + 1);
  for (int64_t i = 0; i <= rows; ++i) out.codebook_offset[i] = i * k;
  out.codebook.resize(static_cast<size_t>(rows * k));
  out.labels.resize(static_cast<size_t>(rows * cols));
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 8) if (rows * cols >= kParallelMinWork)
  for (int64_t i = 0; i < rows; ++i) {
    errors.run([&] {
      const auto km = kmeans1d(w.row(i), f, k, solver);
      for (int q = 0; q < k; ++q) out.codebook[i * k + q] = float_to_half(km.centroids[q]);
      std::copy(km.labels.begin(), km.labels.end(), out.labels.begin() + i * cols);
    });
  }
  errors.rethrow();
  return out;
}

int64_t lut_stored_bits(const LutLayer& layer) {
  int64_t s = lut_layer_overhead_bits(layer.cols, !layer.alpha.empty());
  for (int64_t i = 0; i < layer.rows; ++i)
    s += lut_row_cost_bits(layer.cols, layer.bits[i], lut_entries(layer), is_grid_row(layer, i));
  return s + stored_bits(layer.sparse, layer.rows, layer.cols);
}

}  // namespace skim::quant
