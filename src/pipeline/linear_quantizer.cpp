#include "src/pipeline/linear_quantizer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "io/packed_format.h"
#include "src/core/error.h"
#include "src/core/stopwatch.h"
#include "src/pipeline/byte_stream.h"
#include "src/pipeline/quant_device_steps.h"
#include "src/quant/claq.h"
#include "src/quant/gptq.h"
#include "src/quant/hessian.h"
#include "src/quant/layer_error.h"
#include "src/quant/lut_layer.h"
#include "src/quant/row_group.h"
#include "src/quant/rtn.h"
#include "src/quant/skim_layer.h"
#include "src/quant/slim.h"
#include "src/quant/uniform_layer.h"

namespace skim::pipeline {
namespace {

int integer_bits(const QuantizeOptions& o) {
  const double b = std::round(o.bits);
  if (std::fabs(b - o.bits) > 1e-9 || b < 1 || b > 8)
    fail(ErrorKind::kUsage, "--bits {} : method {} needs an integer bit-width in 1..8", o.bits,
         method_name(o.method));
  return static_cast<int>(b);
}

// `device_ranks`: as quantize_linear's (the scale objective then sums the ranks on the device).
quant::SkimOptions skim_options(const QuantizeOptions& o,
                                comm::Communicator* device_ranks = nullptr) {
  quant::SkimOptions s;
  s.bits = o.bits;
  s.b_min = o.b_min;
  s.b_max = o.b_max;
  s.solver = o.exact_kmeans ? quant::KMeansSolver::kExact : quant::KMeansSolver::kLloyd;
  s.scale.train = o.train_scale;
  s.scale.steps = o.scale_steps;
  s.scale.refine_full_hessian = o.refine_luts;
  s.scale.solver = s.solver;
  s.allocation.entries = o.lut_entries;
  s.grid_rows = o.grid_rows;
  s.outliers = o.outliers;
  s.outliers_auto = o.outliers_auto;
  if (o.device == Device::kCuda) {
    s.error_table_builder = [device = o.cuda_device](
                                const Tensor& w, const Tensor& h, quant::ImportanceView f,
                                int b_min, int b_max, quant::KMeansSolver solver,
                                quant::LutEntries entries, const quant::SparsePart* exact) {
      // The device table has no exact positions: tables with reserved weights on the CPU.
      if (exact != nullptr)
        return quant::build_error_table(w, h, f, b_min, b_max, solver, entries, exact);
      return cuda_error_table(device, w, h, f, b_min, b_max, solver, entries);
    };
    s.scale.objective_maker = [device = o.cuda_device,
                               device_ranks](const quant::ScaleProblem<float>& p) {
      return cuda_scale_objective(device, p, device_ranks);
    };
    s.scale.objective_sums_group = device_ranks != nullptr;
    s.scale.row_kmeans = [device = o.cuda_device](
                             const Tensor& w, quant::ImportanceView f, std::span<const int> k,
                             std::span<const float> alpha, quant::KMeansSolver solver,
                             std::vector<uint8_t>& labels,
                             std::vector<std::vector<double>>& centroids) {
      cuda_row_kmeans(device, w, f, k, alpha, solver, labels, centroids);
    };
    s.scale.refine_systems = [device = o.cuda_device](const quant::RefineProblem& p) {
      return cuda_refine_systems(device, p);
    };
  }
  return s;
}

Tensor damped(const Tensor& h, double fraction) {
  Tensor d = h;
  quant::damp_hessian(d, fraction);
  return d;
}

template <typename T>
void append(std::vector<T>& to, const std::vector<T>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

// A sparse part with no entry (--outliers auto where no row of the linear reserves one) is not
// stored: it would cost its row counts for nothing. Only whole linears: row blocks must agree.
void drop_if_empty(quant::SparsePart& s) {
  if (!s.empty() && s.nnz() == 0) s = {};
}

// The LUT entries as --lut stores them (f16: as they are).
void encode_entries(quant::LutLayer& layer, quant::LutEntries entries) {
  if (entries == quant::LutEntries::kQ8) quant::encode_codebook_q8(layer);
  if (entries == quant::LutEntries::kD8) quant::encode_codebook_d8(layer);
}

}  // namespace

quant::ErrorTable linear_error_table(const Tensor& w, const Tensor& h,
                                     const QuantizeOptions& options, double* energy,
                                     quant::RowGroup& group) {
  if (energy != nullptr) *energy = quant::sum_over_rows(group, quant::row_energies(w, h));
  return quant::skim_error_table(w, damped(h, options.damp), skim_options(options));
}

int64_t linear_reserved_bits(int64_t rows, int64_t cols, const QuantizeOptions& options) {
  return quant::reserved_bits(rows, cols, skim_options(options));
}

QuantizedLinear quantize_linear(const std::string& name, const Tensor& w, const Tensor& h,
                                const QuantizeOptions& options, const std::vector<uint8_t>* bits,
                                quant::RowGroup& group, comm::Communicator* device_ranks) {
  const auto t0 = std::chrono::steady_clock::now();
  QuantizedLinear q;
  q.name = name;
  Tensor w_hat;
  // A rank may hold no row of a small linear: it still takes part in the group's sums.
  const bool none = w.dim(0) == 0;
  switch (options.method) {
    case Method::kSkim: {
      const Tensor hd = damped(h, options.damp);
      const auto opts = skim_options(options, device_ranks);
      quant::SkimLayerResult r;
      if (bits == nullptr) {
        r = quant::quantize_skim_layer(w, hd, opts, &group);
      } else {
        const auto& b = group.block();
        if (static_cast<int64_t>(bits->size()) != b.total)
          fail(ErrorKind::kInternal, "{}: {} row bit-widths for {} rows", name, bits->size(),
               b.total);
        const std::span<const uint8_t> mine(bits->data() + b.first, static_cast<size_t>(b.count));
        r = quant::quantize_skim_layer_with_bits(w, hd, mine, opts, &group);
      }
      q.seconds_error_table = r.times.error_table_s;
      q.seconds_allocation = r.times.allocation_s;
      q.seconds_kmeans = r.times.kmeans_s;
      q.seconds_scale = r.times.scale_training_s + r.times.refine_s;
      if (r.scale.error_final > 0.0) q.scale_gain = r.scale.error_unscaled / r.scale.error_final;
      if (none) break;
      encode_entries(r.layer, options.lut_entries);
      quant::set_sparse_corrections(r.layer, w);
      if (group.block().count == group.block().total) drop_if_empty(r.layer.sparse);
      w_hat = quant::dequantize(r.layer);
      q.lut = quant::pack(r.layer);
      break;
    }
    case Method::kKmeans: {
      const int b = integer_bits(options);
      if (none) break;
      const auto t = std::chrono::steady_clock::now();
      quant::LutLayer layer = quant::quantize_kmeans_layer(
          w, damped(h, options.damp), b, quant::ImportanceKind::kHessianDiagonal,
          options.exact_kmeans ? quant::KMeansSolver::kExact : quant::KMeansSolver::kLloyd);
      q.seconds_kmeans = seconds_since(t);
      encode_entries(layer, options.lut_entries);
      w_hat = quant::dequantize(layer);
      q.lut = quant::pack(layer);
      break;
    }
    case Method::kGptq: {
      quant::GptqOptions g;
      g.bits = integer_bits(options);
      g.group_size = options.group_size;
      g.act_order = options.act_order;
      g.damp = options.damp;
      q.kind = PackedKind::kUniform;
      if (none) break;
      quant::UniformLayer layer = options.device == Device::kCuda
                                      ? cuda_gptq_quantize(options.cuda_device, w, h, g)
                                      : quant::gptq_quantize(w, h, g);
      w_hat = quant::dequantize(layer);
      q.uniform = quant::pack(layer);
      break;
    }
    case Method::kSlim: {
      quant::SlimOptions s;
      s.bits = integer_bits(options);
      s.group_size = options.group_size;
      s.damp = options.damp;
      q.kind = PackedKind::kUniform;
      quant::SlimResult r = quant::slim_quantize(w, h, s, group);
      if (none) break;
      w_hat = quant::dequantize(r.layer);
      q.uniform = quant::pack(r.layer);
      break;
    }
    case Method::kClaq: {
      quant::ClaqOptions c;
      c.bits = options.bits;
      c.outliers = options.outliers;
      c.damp = options.damp;
      c.solver = options.exact_kmeans ? quant::KMeansSolver::kExact : quant::KMeansSolver::kLloyd;
      q.kind = PackedKind::kColumnLut;
      const auto t = std::chrono::steady_clock::now();
      q.column = quant::claq_quantize(w, h, c, group);  // every rank gathers the whole weight
      q.seconds_kmeans = seconds_since(t);
      if (none) break;
      w_hat = quant::dequantize(q.column);
      break;
    }
    case Method::kRtn: {
      quant::RtnOptions r;
      r.bits = integer_bits(options);
      r.group_size = options.group_size;
      q.kind = PackedKind::kUniform;
      if (none) break;
      quant::UniformLayer layer = options.device == Device::kCuda
                                      ? cuda_rtn_quantize(options.cuda_device, w, r)
                                      : quant::rtn_quantize(w, r);
      w_hat = quant::dequantize(layer);
      q.uniform = quant::pack(layer);
      break;
    }
  }
  q.error =
      quant::sum_over_rows(group, none ? std::vector<double>{} : quant::row_errors(w, w_hat, h));
  q.energy = quant::sum_over_rows(group, quant::row_energies(w, h));
  if (!none) q.stored_bits = stored_bits(q);
  q.seconds_total = seconds_since(t0);
  return q;
}

int64_t QuantizedLinear::rows() const {
  return kind == PackedKind::kLut       ? lut.rows
         : kind == PackedKind::kUniform ? uniform.rows
                                        : column.rows;
}
int64_t QuantizedLinear::cols() const {
  return kind == PackedKind::kLut       ? lut.cols
         : kind == PackedKind::kUniform ? uniform.cols
                                        : column.cols;
}

Tensor dequantize(const QuantizedLinear& q) {
  switch (q.kind) {
    case PackedKind::kLut:
      return quant::dequantize(quant::unpack(q.lut));
    case PackedKind::kUniform:
      return quant::dequantize(quant::unpack(q.uniform));
    case PackedKind::kColumnLut:
      break;
  }
  return quant::dequantize(q.column);
}

namespace {

void check(const QuantizedLinear& q, const std::string& what) {
  switch (q.kind) {
    case PackedKind::kLut:
      io::check_packed_layer(q.lut, q.name, what);
      return;
    case PackedKind::kUniform:
      io::check_packed_layer(q.uniform, q.name, what);
      return;
    case PackedKind::kColumnLut:
      io::check_packed_layer(q.column, q.name, what);
      return;
  }
}

void put_sparse(ByteWriter& w, const quant::SparsePart& s) {
  w.put_vector(s.row_ptr);
  w.put_vector(s.cols);
  w.put_vector(s.values);
}

quant::SparsePart get_sparse(ByteReader& r) {
  quant::SparsePart s;
  s.row_ptr = r.get_vector<int64_t>();
  s.cols = r.get_vector<int32_t>();
  s.values = r.get_vector<uint16_t>();
  return s;
}

}  // namespace

int64_t stored_bits(const QuantizedLinear& q) {
  switch (q.kind) {
    case PackedKind::kLut:
      return quant::stored_bits(q.lut);
    case PackedKind::kUniform:
      return quant::stored_bits(q.uniform);
    case PackedKind::kColumnLut:
      break;
  }
  return quant::stored_bits(q.column);
}

QuantizedLinear merge_row_blocks(std::vector<QuantizedLinear> blocks, const std::string& what) {
  if (blocks.empty()) fail(ErrorKind::kInternal, "{}: no row blocks to merge", what);
  QuantizedLinear q = std::move(blocks.front());
  std::vector<quant::SparsePart> sparse = {q.kind == PackedKind::kLut ? q.lut.sparse
                                                                      : q.column.sparse};
  // One flag per row of every block (a block without grid rows stores none).
  const auto grid_flags = [](const quant::PackedLutLayer& l) {
    return l.grid_rows.empty() ? std::vector<uint8_t>(static_cast<size_t>(l.rows), 0) : l.grid_rows;
  };
  std::vector<uint8_t> grid_rows =
      q.kind == PackedKind::kLut ? grid_flags(q.lut) : std::vector<uint8_t>{};
  for (size_t b = 1; b < blocks.size(); ++b) {
    const QuantizedLinear& x = blocks[b];
    bool fits = x.name == q.name && x.kind == q.kind;
    if (fits && q.kind == PackedKind::kLut)
      fits = x.lut.cols == q.lut.cols && x.lut.alpha == q.lut.alpha &&
             x.lut.codebook_q8.empty() == q.lut.codebook_q8.empty() && x.lut.d8 == q.lut.d8;
    if (fits && q.kind == PackedKind::kUniform)
      fits = x.uniform.cols == q.uniform.cols && x.uniform.bits == q.uniform.bits &&
             x.uniform.group_size == q.uniform.group_size && x.uniform.perm == q.uniform.perm &&
             x.uniform.group_bits == q.uniform.group_bits;
    if (fits && q.kind == PackedKind::kColumnLut)  // the columns' LUTs are every block's
      fits = x.column.cols == q.column.cols && x.column.bits == q.column.bits &&
             x.column.codebook == q.column.codebook &&
             x.column.sparse.empty() == q.column.sparse.empty();
    if (!fits)
      fail(ErrorKind::kBadInput, "{}: row block {} does not continue block 0 ({})", what, b,
           x.name);
    switch (q.kind) {
      case PackedKind::kLut:
        q.lut.rows += x.lut.rows;
        append(q.lut.bits, x.lut.bits);
        append(q.lut.codebook, x.lut.codebook);
        append(q.lut.codebook_q8, x.lut.codebook_q8);
        append(q.lut.codebook_q8_grid, x.lut.codebook_q8_grid);
        append(grid_rows, grid_flags(x.lut));
        append(q.lut.labels, x.lut.labels);
        sparse.push_back(x.lut.sparse);
        break;
      case PackedKind::kUniform:
        q.uniform.rows += x.uniform.rows;
        append(q.uniform.scale, x.uniform.scale);
        append(q.uniform.zero, x.uniform.zero);
        append(q.uniform.codes, x.uniform.codes);
        break;
      case PackedKind::kColumnLut:
        q.column.rows += x.column.rows;
        append(q.column.codes, x.column.codes);
        sparse.push_back(x.column.sparse);
        break;
    }
  }
  if (q.kind == PackedKind::kLut)
    q.lut.grid_rows =
        std::any_of(grid_rows.begin(), grid_rows.end(), [](uint8_t g) { return g != 0; })
            ? std::move(grid_rows)
            : std::vector<uint8_t>{};
  if (sparse.size() > 1 && q.kind == PackedKind::kLut) {
    q.lut.sparse = quant::concat_rows(sparse);
    drop_if_empty(q.lut.sparse);
  }
  if (sparse.size() > 1 && q.kind == PackedKind::kColumnLut && !q.column.sparse.empty())
    q.column.sparse = quant::concat_rows(sparse);
  check(q, what);
  q.stored_bits = stored_bits(q);
  return q;
}

std::vector<uint8_t> serialize(const QuantizedLinear& q) {
  ByteWriter w;
  w.put_string(q.name);
  w.put<uint8_t>(static_cast<uint8_t>(q.kind));
  switch (q.kind) {
    case PackedKind::kLut:
      w.put(q.lut.rows);
      w.put(q.lut.cols);
      w.put_vector(q.lut.bits);
      w.put_vector(q.lut.codebook);
      w.put_vector(q.lut.labels);
      w.put_vector(q.lut.alpha);
      w.put_vector(q.lut.codebook_q8);
      w.put_vector(q.lut.codebook_q8_grid);
      w.put_vector(q.lut.grid_rows);
      w.put(static_cast<uint8_t>(q.lut.d8));
      put_sparse(w, q.lut.sparse);
      break;
    case PackedKind::kUniform:
      w.put(q.uniform.rows);
      w.put(q.uniform.cols);
      w.put(q.uniform.bits);
      w.put(q.uniform.group_size);
      w.put_vector(q.uniform.scale);
      w.put_vector(q.uniform.zero);
      w.put_vector(q.uniform.perm);
      w.put_vector(q.uniform.group_bits);
      w.put_vector(q.uniform.codes);
      break;
    case PackedKind::kColumnLut:
      w.put(q.column.rows);
      w.put(q.column.cols);
      w.put_vector(q.column.bits);
      w.put_vector(q.column.codebook);
      w.put_vector(q.column.codes);
      put_sparse(w, q.column.sparse);
      break;
  }
  for (double v : {q.error, q.energy, q.scale_gain, q.seconds_error_table, q.seconds_allocation,
                   q.seconds_kmeans, q.seconds_scale, q.seconds_total})
    w.put(v);
  w.put(q.stored_bits);
  return std::move(w.bytes());
}

QuantizedLinear deserialize_quantized_linear(const uint8_t* data, size_t size,
                                             const std::string& what) {
  ByteReader r(data, size, what);
  QuantizedLinear q;
  q.name = r.get_string();
  const auto kind = r.get<uint8_t>();
  if (kind > static_cast<uint8_t>(PackedKind::kColumnLut))
    fail(ErrorKind::kBadInput, "{}: unknown layer kind {}", what, kind);
  q.kind = static_cast<PackedKind>(kind);
  switch (q.kind) {
    case PackedKind::kLut:
      q.lut.rows = r.get<int64_t>();
      q.lut.cols = r.get<int64_t>();
      q.lut.bits = r.get_vector<uint8_t>();
      q.lut.codebook = r.get_vector<uint16_t>();
      q.lut.labels = r.get_vector<uint8_t>();
      q.lut.alpha = r.get_vector<uint16_t>();
      q.lut.codebook_q8 = r.get_vector<uint8_t>();
      q.lut.codebook_q8_grid = r.get_vector<uint16_t>();
      q.lut.grid_rows = r.get_vector<uint8_t>();
      q.lut.d8 = r.get<uint8_t>() != 0;
      q.lut.sparse = get_sparse(r);
      break;
    case PackedKind::kUniform:
      q.uniform.rows = r.get<int64_t>();
      q.uniform.cols = r.get<int64_t>();
      q.uniform.bits = r.get<int>();
      q.uniform.group_size = r.get<int64_t>();
      q.uniform.scale = r.get_vector<uint16_t>();
      q.uniform.zero = r.get_vector<uint16_t>();
      q.uniform.perm = r.get_vector<int32_t>();
      q.uniform.group_bits = r.get_vector<uint8_t>();
      q.uniform.codes = r.get_vector<uint8_t>();
      break;
    case PackedKind::kColumnLut:
      q.column.rows = r.get<int64_t>();
      q.column.cols = r.get<int64_t>();
      q.column.bits = r.get_vector<uint8_t>();
      q.column.codebook = r.get_vector<uint16_t>();
      q.column.codes = r.get_vector<uint8_t>();
      q.column.sparse = get_sparse(r);
      break;
  }
  for (double* v : {&q.error, &q.energy, &q.scale_gain, &q.seconds_error_table,
                    &q.seconds_allocation, &q.seconds_kmeans, &q.seconds_scale, &q.seconds_total})
    *v = r.get<double>();
  q.stored_bits = r.get<int64_t>();
  if (!r.done()) fail(ErrorKind::kBadInput, "{}: trailing bytes", what);
  check(q, what);
  return q;
}

std::vector<uint8_t> serialize(const LinearErrorTable& t) {
  ByteWriter w;
  w.put(t.energy);
  w.put(t.table.rows);
  w.put(t.table.b_min);
  w.put(t.table.b_max);
  w.put_vector(t.table.e);
  w.put_vector(t.table.e_grid);
  w.put_vector(t.table.reserve_counts);
  for (const auto& part : t.table.e_reserved) w.put_vector(part);
  return std::move(w.bytes());
}

LinearErrorTable merge_row_blocks(std::vector<LinearErrorTable> blocks, const std::string& what) {
  if (blocks.empty()) fail(ErrorKind::kInternal, "{}: no row blocks to merge", what);
  LinearErrorTable t = std::move(blocks.front());
  for (size_t b = 1; b < blocks.size(); ++b) {
    const LinearErrorTable& x = blocks[b];
    if (x.table.b_min != t.table.b_min || x.table.b_max != t.table.b_max || x.energy != t.energy ||
        x.table.reserve_counts != t.table.reserve_counts)
      fail(ErrorKind::kBadInput, "{}: error table block {} does not continue block 0", what, b);
    t.table.rows += x.table.rows;
    append(t.table.e, x.table.e);
    append(t.table.e_grid, x.table.e_grid);
    for (size_t l = 0; l < t.table.e_reserved.size(); ++l)
      append(t.table.e_reserved[l], x.table.e_reserved[l]);
  }
  if (t.table.has_grid() && t.table.e_grid.size() != t.table.e.size())
    fail(ErrorKind::kBadInput, "{}: row blocks with and without grid-row errors", what);
  return t;
}

LinearErrorTable deserialize_error_table(const uint8_t* data, size_t size,
                                         const std::string& what) {
  ByteReader r(data, size, what);
  LinearErrorTable t;
  t.energy = r.get<double>();
  t.table.rows = r.get<int64_t>();
  t.table.b_min = r.get<int>();
  t.table.b_max = r.get<int>();
  t.table.e = r.get_vector<double>();
  t.table.e_grid = r.get_vector<double>();
  t.table.reserve_counts = r.get_vector<int64_t>();
  if (t.table.reserve_counts.size() > quant::kMaxReserveLevel)
    fail(ErrorKind::kBadInput, "{}: {} counts of reserved weights", what,
         t.table.reserve_counts.size());
  for (size_t l = 0; l < t.table.reserve_counts.size(); ++l)
    t.table.e_reserved.push_back(r.get_vector<double>());
  if (!r.done()) fail(ErrorKind::kBadInput, "{}: trailing bytes", what);
  const auto& tb = t.table;
  if (tb.b_min < 1 || tb.b_max > 8 || tb.b_min > tb.b_max || tb.rows <= 0 ||
      static_cast<uint64_t>(tb.rows) != tb.e.size() / static_cast<uint64_t>(tb.levels()) ||
      tb.e.size() % static_cast<uint64_t>(tb.levels()) != 0)
    fail(ErrorKind::kBadInput, "{}: error table of {} rows, bits {}..{} and {} entries", what,
         tb.rows, tb.b_min, tb.b_max, tb.e.size());
  if (!tb.e_grid.empty() && tb.e_grid.size() != tb.e.size())
    fail(ErrorKind::kBadInput, "{}: {} grid-row errors for {} LUT-row errors", what,
         tb.e_grid.size(), tb.e.size());
  for (const auto& part : tb.e_reserved)
    if (part.size() != tb.e.size())
      fail(ErrorKind::kBadInput, "{}: {} errors with reserved weights for {} without", what,
           part.size(), tb.e.size());
  for (const int64_t c : tb.reserve_counts)
    if (c < 1) fail(ErrorKind::kBadInput, "{}: {} reserved weights per row", what, c);
  std::vector<const std::vector<double>*> parts = {&tb.e, &tb.e_grid};
  for (const auto& part : tb.e_reserved) parts.push_back(&part);
  for (const auto* part : parts)
    for (double e : *part)
      if (!std::isfinite(e)) fail(ErrorKind::kBadInput, "{}: error {} in the table", what, e);
  if (!std::isfinite(t.energy))
    fail(ErrorKind::kBadInput, "{}: energy {} in the table", what, t.energy);
  return t;
}

}  // namespace skim::pipeline
