#include "src/quant/slim.h"

#include <algorithm>
#include <numeric>

#include "src/core/error.h"
#include "src/quant/layer_error.h"

namespace skim::quant {

std::vector<double> slim_group_salience(const Tensor& w, const GptqFactor& factor,
                                        int64_t group_size, RowGroup& group) {
  const int64_t rows = w.dim(0);
  const int64_t n = w.dim(1);
  const int64_t groups = (n + group_size - 1) / group_size;
  std::vector<double> inv_d2(static_cast<size_t>(n), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    const double d = factor.u[static_cast<size_t>(j * n + j)];
    if (!factor.dead[static_cast<size_t>(j)]) inv_d2[static_cast<size_t>(j)] = 1.0 / (d * d);
  }
  std::vector<double> partial(static_cast<size_t>(rows * groups), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const double v = w.at(i, j);
      partial[static_cast<size_t>(i * groups + j / group_size)] +=
          v * v * inv_d2[static_cast<size_t>(j)];
    }
  std::vector<double> out(static_cast<size_t>(groups));
  group.ordered_sum(partial.data(), rows, groups, out.data());
  return out;
}

std::vector<uint8_t> slim_group_bits(std::span<const double> salience, int64_t cols,
                                     int64_t group_size, int bits, int64_t moved) {
  const int64_t full = cols / group_size;
  if (moved < 0 || 2 * moved > full || bits < 2 || bits > 7 ||
      static_cast<int64_t>(salience.size()) != (cols + group_size - 1) / group_size)
    fail(ErrorKind::kInternal, "slim: {} moved groups of {} full, bits {}", moved, full, bits);
  std::vector<int64_t> order(static_cast<size_t>(full));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return salience[static_cast<size_t>(a)] > salience[static_cast<size_t>(b)];
  });
  std::vector<uint8_t> widths(salience.size(), static_cast<uint8_t>(bits));
  for (int64_t k = 0; k < moved; ++k) {
    widths[static_cast<size_t>(order[static_cast<size_t>(k)])] = static_cast<uint8_t>(bits + 1);
    widths[static_cast<size_t>(order[static_cast<size_t>(full - 1 - k)])] =
        static_cast<uint8_t>(bits - 1);
  }
  return widths;
}

std::vector<int64_t> slim_candidates(int64_t full_groups, int64_t max_candidates) {
  const int64_t top = full_groups / 2;
  std::vector<int64_t> c;
  if (top + 1 <= max_candidates) {
    for (int64_t k = 0; k <= top; ++k) c.push_back(k);
    return c;
  }
  for (int64_t k = 0; k < max_candidates; ++k) {
    // round(k * top / (max_candidates - 1)) in integers
    const int64_t v = (2 * k * top + (max_candidates - 1)) / (2 * (max_candidates - 1));
    if (c.empty() || c.back() != v) c.push_back(v);
  }
  return c;
}

SlimResult slim_quantize(const Tensor& w, const Tensor& h, const SlimOptions& o, RowGroup& group) {
  if (o.bits < 2 || o.bits > 7 || o.group_size <= 0 || o.group_size % 8 != 0 ||
      o.max_candidates < 2)
    fail(ErrorKind::kBadInput,
         "slim: bits {} (need 2..7), group size {} (need a positive multiple of 8), {} "
         "candidates (need >= 2)",
         o.bits, o.group_size, o.max_candidates);
  if (w.ndim() != 2 || h.ndim() != 2 || h.dim(0) != w.dim(1) || h.dim(1) != w.dim(1))
    fail(ErrorKind::kBadInput, "slim: weight {} with Hessian {}", w.shape_string(),
         h.shape_string());
  const int64_t n = w.dim(1);
  const bool none = w.dim(0) == 0;  // this rank holds no row: it still joins every sum
  const std::vector<double> hd(h.values().begin(), h.values().end());
  const GptqFactor factor = gptq_factor(hd, n, o.damp, false);
  const std::vector<double> salience = slim_group_salience(w, factor, o.group_size, group);

  GptqOptions g;
  g.bits = o.bits;
  g.group_size = o.group_size;
  g.damp = o.damp;
  g.clip_search = true;
  SlimResult best;
  bool first = true;
  for (int64_t moved : slim_candidates(n / o.group_size, o.max_candidates)) {
    g.group_bits = slim_group_bits(salience, n, o.group_size, o.bits, moved);
    UniformLayer layer;
    std::vector<double> errors;
    if (!none) {
      layer = gptq_quantize(w, factor, g);
      errors = row_errors(w, dequantize(layer), h);
    }
    const double e = sum_over_rows(group, errors);
    if (first || e < best.error) {
      best.layer = std::move(layer);
      best.moved_groups = moved;
      best.error = e;
      first = false;
    }
  }
  return best;
}

}  // namespace skim::quant
