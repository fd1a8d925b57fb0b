#include "src/quant/allocation.h"

#include <cmath>
#include <queue>

#include "src/core/error.h"
#include "src/quant/lut_layer.h"

namespace skim::quant {
namespace {

struct Point {
  int bits;
  int64_t cost;
  double error;
};

// Lower convex hull of one row's points from b_min up to its least error: only the upgrades a
// greedy should ever take, in order of decreasing error drop per bit.
std::vector<Point> lower_hull(const ErrorTable& t, int64_t row, int64_t cols, double scale) {
  std::vector<Point> pts;
  int best = t.b_min;
  for (int b = t.b_min; b <= t.b_max; ++b) {
    pts.push_back({b, lut_row_cost_bits(cols, b), scale * t.at(row, b)});
    if (pts.back().error < pts[best - t.b_min].error) best = b;
  }
  pts.resize(static_cast<size_t>(best - t.b_min + 1));
  std::vector<Point> hull;
  for (const Point& p : pts) {
    while (hull.size() >= 2) {
      const Point& a = hull[hull.size() - 2];
      const Point& b = hull.back();
      const double cross = static_cast<double>(b.cost - a.cost) * (p.error - a.error) -
                           (b.error - a.error) * static_cast<double>(p.cost - a.cost);
      if (cross > 0.0) break;  // b lies strictly below the chord a-p: keep it
      hull.pop_back();
    }
    hull.push_back(p);
  }
  return hull;
}

struct Step {
  double gain;                           // error drop per stored bit
  int64_t row;                           // global row index
  bool operator<(const Step& o) const {  // max-heap on gain, then the lower row first
    return gain < o.gain || (gain == o.gain && row > o.row);
  }
};

}  // namespace

GlobalAllocation allocate_bits_global(std::span<const LayerErrors> layers, double bits_per_weight,
                                      const AllocationOptions& options) {
  GlobalAllocation out;
  std::vector<std::vector<Point>> hulls;
  std::vector<size_t> layer_of;
  std::vector<int64_t> row_in_layer;
  int64_t cost = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerErrors& le = layers[l];
    if (le.table == nullptr || le.cols <= 0 || !(le.error_scale > 0.0))
      fail(ErrorKind::kInternal, "allocation: layer {} has no table, columns or scale", l);
    out.weights += le.table->rows * le.cols;
    cost += lut_layer_overhead_bits(le.cols, le.has_alpha);
    for (int64_t i = 0; i < le.table->rows; ++i) {
      hulls.push_back(lower_hull(*le.table, i, le.cols, le.error_scale));
      layer_of.push_back(l);
      row_in_layer.push_back(i);
      cost += hulls.back().front().cost;
    }
  }
  if (!(bits_per_weight > 0.0) || !std::isfinite(bits_per_weight))
    fail(ErrorKind::kUsage, "allocation: bits per weight {} is not a positive number",
         bits_per_weight);
  out.budget_bits =
      static_cast<int64_t>(std::floor(bits_per_weight * static_cast<double>(out.weights)));
  if (cost > out.budget_bits)
    fail(ErrorKind::kUsage,
         "allocation: --bits {} is below the minimum {:.4f} (every row at its lowest bit-width, "
         "all overhead counted)",
         bits_per_weight, static_cast<double>(cost) / static_cast<double>(out.weights));

  std::vector<size_t> pos(hulls.size(), 0);
  std::priority_queue<Step> heap;
  auto push_next = [&](int64_t r) {
    const auto& h = hulls[r];
    const size_t p = pos[r];
    if (p + 1 >= h.size()) return;
    heap.push({(h[p].error - h[p + 1].error) / static_cast<double>(h[p + 1].cost - h[p].cost), r});
  };
  for (int64_t r = 0; r < static_cast<int64_t>(hulls.size()); ++r) push_next(r);
  while (!heap.empty()) {
    const Step s = heap.top();
    heap.pop();
    const auto& h = hulls[s.row];
    const int64_t extra = h[pos[s.row] + 1].cost - h[pos[s.row]].cost;
    if (cost + extra > out.budget_bits) {
      if (!options.fill_up) break;
      continue;  // this row's later steps need this one first: the row is done
    }
    cost += extra;
    ++pos[s.row];
    push_next(s.row);
  }

  out.layers.resize(layers.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    BitAllocation& a = out.layers[l];
    a.bits.resize(static_cast<size_t>(layers[l].table->rows));
    a.weights = layers[l].table->rows * layers[l].cols;
    a.cost_bits = lut_layer_overhead_bits(layers[l].cols, layers[l].has_alpha);
  }
  for (size_t r = 0; r < hulls.size(); ++r) {
    const Point& p = hulls[r][pos[r]];
    BitAllocation& a = out.layers[layer_of[r]];
    a.bits[static_cast<size_t>(row_in_layer[r])] = static_cast<uint8_t>(p.bits);
    a.cost_bits += p.cost;
    a.error += p.error;
  }
  for (auto& a : out.layers)
    a.average_bits = static_cast<double>(a.cost_bits) / static_cast<double>(a.weights);
  out.cost_bits = cost;
  out.average_bits = static_cast<double>(cost) / static_cast<double>(out.weights);
  SKIM_ASSERT(cost <= out.budget_bits);
  return out;
}

BitAllocation allocate_bits(const ErrorTable& table, int64_t cols, double bits_per_weight,
                            bool has_alpha, const AllocationOptions& options) {
  const LayerErrors one{&table, cols, has_alpha, 1.0};
  GlobalAllocation g =
      allocate_bits_global(std::span<const LayerErrors>(&one, 1), bits_per_weight, options);
  return std::move(g.layers.front());
}

}  // namespace skim::quant
