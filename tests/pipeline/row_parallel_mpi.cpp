// Row-parallel quantization: every method run on row blocks spread over the ranks of the job,
// merged in row order, gives exactly the bytes of the same linear quantized whole on one process
// (the reference, computed on every rank). Runs at 1, 2, 3 and 4 ranks: 300 rows are four units
// of 96 (the last one short), split unevenly over 3 ranks, and a linear of 24 rows (one unit)
// leaves ranks without rows.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "src/core/error.h"
#include "src/pipeline/comm_row_group.h"
#include "src/pipeline/linear_quantizer.h"
#include "src/quant/scale_training.h"
#include "tests/comm/mpi_test_main.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::pipeline {
namespace {

using comm::testing::world;

struct Layer {
  Tensor w;
  Tensor h;
};

Layer make_layer(int64_t rows, int64_t cols, uint64_t seed) {
  const auto L = quant::testing::make_synthetic_layer(rows, cols, seed);
  Layer l{Tensor({rows, cols}, L.w), Tensor({cols, cols})};
  for (size_t k = 0; k < L.h.size(); ++k) l.h.data()[k] = static_cast<float>(L.h[k]);
  return l;
}

// Every rank's serialised block, in rank order (ranks without rows send nothing).
std::vector<std::vector<uint8_t>> gather_all(const std::vector<uint8_t>& mine) {
  const auto sizes = world().all_gather_value<int64_t>(static_cast<int64_t>(mine.size()));
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  std::vector<uint8_t> all(static_cast<size_t>(total));
  world().all_gatherv_bytes(mine.data(), static_cast<int64_t>(mine.size()), all.data(), sizes);
  std::vector<std::vector<uint8_t>> blocks;
  int64_t off = 0;
  for (int64_t s : sizes) {
    if (s > 0) blocks.emplace_back(all.begin() + off, all.begin() + off + s);
    off += s;
  }
  return blocks;
}

void expect_same(const QuantizedLinear& a, const QuantizedLinear& b, const std::string& what) {
  ASSERT_EQ(a.kind, b.kind) << what;
  if (a.kind == PackedKind::kColumnLut) {
    EXPECT_EQ(a.column.rows, b.column.rows) << what;
    EXPECT_EQ(a.column.bits, b.column.bits) << what;
    EXPECT_EQ(a.column.codebook, b.column.codebook) << what;
    EXPECT_EQ(a.column.codes, b.column.codes) << what;
    EXPECT_EQ(a.column.sparse.row_ptr, b.column.sparse.row_ptr) << what;
    EXPECT_EQ(a.column.sparse.cols, b.column.sparse.cols) << what;
    EXPECT_EQ(a.column.sparse.values, b.column.sparse.values) << what;
  } else if (a.kind == PackedKind::kLut) {
    EXPECT_EQ(a.lut.rows, b.lut.rows) << what;
    EXPECT_EQ(a.lut.bits, b.lut.bits) << what;
    EXPECT_EQ(a.lut.codebook, b.lut.codebook) << what;
    EXPECT_EQ(a.lut.labels, b.lut.labels) << what;
    EXPECT_EQ(a.lut.alpha, b.lut.alpha) << what;
    EXPECT_EQ(a.lut.sparse.row_ptr, b.lut.sparse.row_ptr) << what;
    EXPECT_EQ(a.lut.sparse.cols, b.lut.sparse.cols) << what;
    EXPECT_EQ(a.lut.sparse.values, b.lut.sparse.values) << what;
  } else {
    EXPECT_EQ(a.uniform.rows, b.uniform.rows) << what;
    EXPECT_EQ(a.uniform.scale, b.uniform.scale) << what;
    EXPECT_EQ(a.uniform.zero, b.uniform.zero) << what;
    EXPECT_EQ(a.uniform.perm, b.uniform.perm) << what;
    EXPECT_EQ(a.uniform.group_bits, b.uniform.group_bits) << what;
    EXPECT_EQ(a.uniform.codes, b.uniform.codes) << what;
  }
  // Sums over rows in the same order: the same bits, not just close.
  EXPECT_EQ(a.error, b.error) << what;
  EXPECT_EQ(a.energy, b.energy) << what;
  EXPECT_EQ(a.scale_gain, b.scale_gain) << what;
  EXPECT_EQ(a.stored_bits, b.stored_bits) << what;
}

// The merged blocks, after comparing them with the one-process result.
QuantizedLinear check_method(const QuantizeOptions& o, const Layer& l, const std::string& what) {
  const int64_t rows = l.w.dim(0);
  quant::WholeRows whole(rows);
  const QuantizedLinear reference = quantize_linear("x", l.w, l.h, o, nullptr, whole);

  CommRowGroup group(world(), rows);
  const QuantizedLinear mine = quantize_linear(
      "x", l.w.rows(group.block().first, group.block().count), l.h, o, nullptr, group);
  const auto blobs = gather_all(group.block().count > 0 ? serialize(mine) : std::vector<uint8_t>{});
  std::vector<QuantizedLinear> blocks;
  for (const auto& b : blobs)
    blocks.push_back(deserialize_quantized_linear(b.data(), b.size(), what));
  QuantizedLinear merged = merge_row_blocks(std::move(blocks), what);
  expect_same(merged, reference, what);
  return merged;
}

void check_method(const QuantizeOptions& o, int64_t rows, int64_t cols, uint64_t seed,
                  const std::string& what) {
  check_method(o, make_layer(rows, cols, seed), what);
}

TEST(RowParallel, SkimLayerAllocationMatchesOneProcess) {
  QuantizeOptions o;
  o.bits = 2.6;
  check_method(o, 300, 64, 1, "skim 300 rows");
  check_method(o, 24, 64, 2, "skim 24 rows");
}

TEST(RowParallel, SkimWithoutRefinementMatchesOneProcess) {
  QuantizeOptions o;
  o.bits = 3.2;
  o.refine_luts = false;
  check_method(o, 200, 96, 3, "skim, weighted-mean LUTs");
}

TEST(RowParallel, BaselinesMatchOneProcess) {
  QuantizeOptions o;
  o.bits = 3;
  o.method = Method::kKmeans;
  check_method(o, 300, 64, 4, "kmeans");
  o.method = Method::kGptq;
  o.act_order = true;
  o.group_size = 32;
  check_method(o, 300, 64, 5, "gptq act-order g32");
  o.method = Method::kRtn;
  check_method(o, 300, 64, 6, "rtn g32");
  o.method = Method::kSlim;
  o.act_order = false;
  o.group_size = 16;  // four full groups: N = 0, 1 or 2, chosen from every rank's rows
  check_method(o, 300, 64, 7, "slim g16");
  o.method = Method::kClaq;
  o.bits = 2.5;
  o.outliers = 0.01;
  check_method(o, 300, 64, 8, "claq 2.5 bits, 1% reserved");
}

// Global mode's error table of l: each rank's block, serialised, gathered and merged, as rank 0
// reads them from the etable files.
LinearErrorTable gathered_table(const Layer& l, const QuantizeOptions& o) {
  CommRowGroup group(world(), l.w.dim(0));
  const auto& b = group.block();
  LinearErrorTable mine;
  mine.table = linear_error_table(l.w.rows(b.first, b.count), l.h, o, &mine.energy, group);
  std::vector<LinearErrorTable> tables;
  for (const auto& blob : gather_all(b.count > 0 ? serialize(mine) : std::vector<uint8_t>{}))
    tables.push_back(deserialize_error_table(blob.data(), blob.size(), "table"));
  return merge_row_blocks(std::move(tables), "table");
}

TEST(RowParallel, GlobalModeGivenBitsAndTablesMatchOneProcess) {
  const int64_t rows = 250, cols = 64;
  const Layer l = make_layer(rows, cols, 7);
  QuantizeOptions o;
  quant::WholeRows whole(rows);
  double energy = 0.0;
  const quant::ErrorTable table = linear_error_table(l.w, l.h, o, &energy, whole);
  const LinearErrorTable merged = gathered_table(l, o);
  EXPECT_EQ(merged.table.e, table.e);
  EXPECT_EQ(merged.energy, energy);

  CommRowGroup group(world(), rows);
  const auto& b = group.block();

  // Bits as the global allocator would hand them out: 1..4 by row.
  std::vector<uint8_t> bits(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) bits[static_cast<size_t>(i)] = static_cast<uint8_t>(1 + i % 4);
  const QuantizedLinear reference = quantize_linear("x", l.w, l.h, o, &bits, whole);
  const QuantizedLinear part =
      quantize_linear("x", l.w.rows(b.first, b.count), l.h, o, &bits, group);
  std::vector<QuantizedLinear> blocks;
  for (const auto& blob : gather_all(b.count > 0 ? serialize(part) : std::vector<uint8_t>{}))
    blocks.push_back(deserialize_quantized_linear(blob.data(), blob.size(), "given bits"));
  expect_same(merge_row_blocks(std::move(blocks), "given bits"), reference, "given bits");
}

TEST(RowParallel, ReservedWeightsChosenByTheAllocationMatchOneProcess) {
  // --outliers auto: the tables with reserved weights gathered from every rank, the sparse part
  // of every rank's rows joined (or dropped whole when no row reserves a weight).
  const int64_t rows = 240, cols = 128;
  Layer l = make_layer(rows, cols, 11);
  for (int64_t i = 0; i < rows; i += 3) l.w.at(i, (i * 7) % cols) *= 30.0f;  // planted outliers
  QuantizeOptions o;
  o.bits = 3.0;
  o.outliers_auto = true;
  const QuantizedLinear q = check_method(o, l, "skim, reserved weights chosen");
  EXPECT_GT(q.lut.sparse.nnz(), 0);

  quant::WholeRows whole(rows);
  double energy = 0.0;
  const quant::ErrorTable table = linear_error_table(l.w, l.h, o, &energy, whole);
  ASSERT_EQ(table.reserve_counts, quant::reserve_menu(cols));
  const LinearErrorTable merged = gathered_table(l, o);
  EXPECT_EQ(merged.table.e, table.e);
  EXPECT_EQ(merged.table.reserve_counts, table.reserve_counts);
  EXPECT_EQ(merged.table.e_reserved, table.e_reserved);
}

TEST(RowParallel, ScaleGradientSummedOverRanksIsTheOneProcessGradient) {
  // The frozen-label loss and its gradient in log alpha, over every rank's rows in fixed order,
  // against the same problem held whole: the same bits, at a point away from alpha = 1.
  const int64_t rows = 300, cols = 64;
  const Layer l = make_layer(rows, cols, 9);
  quant::testing::SyntheticRng rng(10);
  std::vector<uint8_t> labels(static_cast<size_t>(rows * cols));
  std::vector<int> k(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) {
    k[static_cast<size_t>(i)] = 2 << (i % 3);
    for (int64_t j = 0; j < cols; ++j)
      labels[static_cast<size_t>(i * cols + j)] =
          static_cast<uint8_t>(rng.next() % static_cast<uint64_t>(k[static_cast<size_t>(i)]));
  }
  std::vector<float> f(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) f[static_cast<size_t>(j)] = l.h.at(j, j);
  std::vector<double> theta(static_cast<size_t>(cols));
  for (auto& t : theta) t = 0.3 * rng.normal();

  const quant::ScaleProblem<float> whole{rows,          cols,          l.w.data(), l.h.data(),
                                         {f.data(), 0}, labels.data(), k.data()};
  std::vector<double> grad_whole;
  const double loss_whole = quant::scale_loss_and_grad(whole, theta, &grad_whole);

  CommRowGroup group(world(), rows);
  const auto& b = group.block();
  const quant::ScaleProblem<float> part{
      b.count,           cols,          l.w.data() + b.first * cols,
      l.h.data(),        {f.data(), 0}, labels.data() + b.first * cols,
      k.data() + b.first};
  std::vector<double> grad_part;
  const double loss_part = quant::scale_loss_and_grad(part, theta, &grad_part, &group);
  EXPECT_EQ(loss_part, loss_whole);
  ASSERT_EQ(grad_part.size(), grad_whole.size());
  EXPECT_EQ(std::memcmp(grad_part.data(), grad_whole.data(), grad_whole.size() * sizeof(double)),
            0);
}

TEST(RowParallel, MergeRefusesBlocksOfAnotherLinear) {
  QuantizeOptions o;
  o.method = Method::kRtn;
  o.bits = 4;
  const Layer l = make_layer(32, 64, 8);
  quant::WholeRows whole(32);
  QuantizedLinear a = quantize_linear("a", l.w, l.h, o, nullptr, whole);
  QuantizedLinear b = a;
  b.name = "b";
  EXPECT_THROW(merge_row_blocks({a, b}, "test"), Error);
  b = a;
  b.uniform.group_size = 32;
  EXPECT_THROW(merge_row_blocks({a, b}, "test"), Error);
}

}  // namespace
}  // namespace skim::pipeline
