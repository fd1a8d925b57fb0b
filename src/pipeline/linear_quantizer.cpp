#include "src/pipeline/linear_quantizer.h"

#include <chrono>
#include <cmath>

#include "io/packed_format.h"
#include "src/core/error.h"
#include "src/core/stopwatch.h"
#include "src/pipeline/byte_stream.h"
#include "src/quant/gptq.h"
#include "src/quant/hessian.h"
#include "src/quant/layer_error.h"
#include "src/quant/lut_layer.h"
#include "src/quant/rtn.h"
#include "src/quant/skim_layer.h"
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

quant::SkimOptions skim_options(const QuantizeOptions& o) {
  quant::SkimOptions s;
  s.bits = o.bits;
  s.b_min = o.b_min;
  s.b_max = o.b_max;
  s.solver = o.exact_kmeans ? quant::KMeansSolver::kExact : quant::KMeansSolver::kLloyd;
  s.scale.train = o.train_scale;
  s.scale.refine_full_hessian = o.refine_luts;
  s.scale.solver = s.solver;
  return s;
}

Tensor damped(const Tensor& h, double fraction) {
  Tensor d = h;
  quant::damp_hessian(d, fraction);
  return d;
}

}  // namespace

quant::ErrorTable linear_error_table(const Tensor& w, const Tensor& h,
                                     const QuantizeOptions& options, double* energy) {
  if (energy != nullptr) *energy = quant::output_energy(w, h);
  return quant::skim_error_table(w, damped(h, options.damp), skim_options(options));
}

QuantizedLinear quantize_linear(const std::string& name, const Tensor& w, const Tensor& h,
                                const QuantizeOptions& options, std::span<const uint8_t> bits) {
  const auto t0 = std::chrono::steady_clock::now();
  QuantizedLinear q;
  q.name = name;
  Tensor w_hat;
  switch (options.method) {
    case Method::kSkim: {
      const Tensor hd = damped(h, options.damp);
      const auto opts = skim_options(options);
      quant::SkimLayerResult r = bits.empty()
                                     ? quant::quantize_skim_layer(w, hd, opts)
                                     : quant::quantize_skim_layer_with_bits(w, hd, bits, opts);
      q.seconds_error_table = r.times.error_table_s;
      q.seconds_allocation = r.times.allocation_s;
      q.seconds_kmeans = r.times.kmeans_s;
      q.seconds_scale = r.times.scale_training_s + r.times.refine_s;
      if (r.scale.error_final > 0.0) q.scale_gain = r.scale.error_unscaled / r.scale.error_final;
      w_hat = quant::dequantize(r.layer);
      q.lut = quant::pack(r.layer);
      break;
    }
    case Method::kKmeans: {
      const auto t = std::chrono::steady_clock::now();
      quant::LutLayer layer = quant::quantize_kmeans_layer(
          w, damped(h, options.damp), integer_bits(options),
          quant::ImportanceKind::kHessianDiagonal,
          options.exact_kmeans ? quant::KMeansSolver::kExact : quant::KMeansSolver::kLloyd);
      q.seconds_kmeans = seconds_since(t);
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
      quant::UniformLayer layer = quant::gptq_quantize(w, h, g);
      w_hat = quant::dequantize(layer);
      q.is_lut = false;
      q.uniform = quant::pack(layer);
      break;
    }
    case Method::kRtn: {
      quant::RtnOptions r;
      r.bits = integer_bits(options);
      r.group_size = options.group_size;
      quant::UniformLayer layer = quant::rtn_quantize(w, r);
      w_hat = quant::dequantize(layer);
      q.is_lut = false;
      q.uniform = quant::pack(layer);
      break;
    }
  }
  q.error = quant::layer_error(w, w_hat, h);
  q.energy = quant::output_energy(w, h);
  q.stored_bits = q.is_lut ? quant::stored_bits(q.lut) : quant::stored_bits(q.uniform);
  q.seconds_total = seconds_since(t0);
  return q;
}

Tensor dequantize(const QuantizedLinear& q) {
  return q.is_lut ? quant::dequantize(quant::unpack(q.lut))
                  : quant::dequantize(quant::unpack(q.uniform));
}

std::vector<uint8_t> serialize(const QuantizedLinear& q) {
  ByteWriter w;
  w.put_string(q.name);
  w.put<uint8_t>(q.is_lut ? 1 : 0);
  if (q.is_lut) {
    w.put(q.lut.rows);
    w.put(q.lut.cols);
    w.put_vector(q.lut.bits);
    w.put_vector(q.lut.codebook);
    w.put_vector(q.lut.labels);
    w.put_vector(q.lut.alpha);
  } else {
    w.put(q.uniform.rows);
    w.put(q.uniform.cols);
    w.put(q.uniform.bits);
    w.put(q.uniform.group_size);
    w.put_vector(q.uniform.scale);
    w.put_vector(q.uniform.zero);
    w.put_vector(q.uniform.perm);
    w.put_vector(q.uniform.codes);
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
  q.is_lut = r.get<uint8_t>() != 0;
  if (q.is_lut) {
    q.lut.rows = r.get<int64_t>();
    q.lut.cols = r.get<int64_t>();
    q.lut.bits = r.get_vector<uint8_t>();
    q.lut.codebook = r.get_vector<uint16_t>();
    q.lut.labels = r.get_vector<uint8_t>();
    q.lut.alpha = r.get_vector<uint16_t>();
  } else {
    q.uniform.rows = r.get<int64_t>();
    q.uniform.cols = r.get<int64_t>();
    q.uniform.bits = r.get<int>();
    q.uniform.group_size = r.get<int64_t>();
    q.uniform.scale = r.get_vector<uint16_t>();
    q.uniform.zero = r.get_vector<uint16_t>();
    q.uniform.perm = r.get_vector<int32_t>();
    q.uniform.codes = r.get_vector<uint8_t>();
  }
  for (double* v : {&q.error, &q.energy, &q.scale_gain, &q.seconds_error_table,
                    &q.seconds_allocation, &q.seconds_kmeans, &q.seconds_scale, &q.seconds_total})
    *v = r.get<double>();
  q.stored_bits = r.get<int64_t>();
  if (!r.done()) fail(ErrorKind::kBadInput, "{}: trailing bytes", what);
  if (q.is_lut)
    io::check_packed_layer(q.lut, q.name, what);
  else
    io::check_packed_layer(q.uniform, q.name, what);
  return q;
}

std::vector<uint8_t> serialize(const LinearErrorTable& t) {
  ByteWriter w;
  w.put(t.energy);
  w.put(t.table.rows);
  w.put(t.table.b_min);
  w.put(t.table.b_max);
  w.put_vector(t.table.e);
  return std::move(w.bytes());
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
  if (!r.done()) fail(ErrorKind::kBadInput, "{}: trailing bytes", what);
  const auto& tb = t.table;
  if (tb.b_min < 1 || tb.b_max > 8 || tb.b_min > tb.b_max || tb.rows <= 0 ||
      static_cast<uint64_t>(tb.rows) != tb.e.size() / static_cast<uint64_t>(tb.levels()) ||
      tb.e.size() % static_cast<uint64_t>(tb.levels()) != 0)
    fail(ErrorKind::kBadInput, "{}: error table of {} rows, bits {}..{} and {} entries", what,
         tb.rows, tb.b_min, tb.b_max, tb.e.size());
  for (double e : tb.e)
    if (!std::isfinite(e)) fail(ErrorKind::kBadInput, "{}: error {} in the table", what, e);
  if (!std::isfinite(t.energy))
    fail(ErrorKind::kBadInput, "{}: energy {} in the table", what, t.energy);
  return t;
}

}  // namespace skim::pipeline
