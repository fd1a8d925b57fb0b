#include "src/quant/allocation.h"

#include <algorithm>
#include <cmath>
#include <queue>

#include "src/core/error.h"
#include "src/quant/lut_layer.h"

namespace skim::quant {
namespace {

// One form a row may take: its choice byte (width, kGridRow) and stored bits.
struct Candidate {
  uint8_t choice;
  int64_t cost;
};

// At most this many forms per row: the hull of a row is a bit mask.
constexpr size_t kMaxCandidates = 64;

// The forms offered to every row of a layer, by increasing cost: LUT rows at every width, grid
// rows too when the table has their errors and entries are q8 (a grid row's LUT is its q8 grid),
// and LUT rows with each count of reserved weights the table has errors for.
std::vector<Candidate> layer_candidates(const ErrorTable& t, int64_t cols, LutEntries entries) {
  std::vector<Candidate> c;
  for (int b = t.b_min; b <= t.b_max; ++b) {
    const int64_t lut = lut_row_cost_bits(cols, b, entries);
    c.push_back({make_choice(b, false, 0), lut});
    if (t.has_grid() && entries != LutEntries::kF16)
      c.push_back({make_choice(b, true, 0), lut_row_cost_bits(cols, b, entries, true)});
    for (int l = 1; l < t.reserve_levels(); ++l)
      c.push_back({make_choice(b, false, l),
                   lut + t.reserve_counts[static_cast<size_t>(l - 1)] * sparse_entry_bits(cols)});
  }
  if (c.size() > kMaxCandidates)
    fail(ErrorKind::kInternal, "allocation: {} forms per row (at most {})", c.size(),
         kMaxCandidates);
  std::stable_sort(c.begin(), c.end(),
                   [](const Candidate& a, const Candidate& b) { return a.cost < b.cost; });
  return c;
}

double candidate_error(const ErrorTable& t, int64_t row, uint8_t choice) {
  return t.at(row, choice_width(choice), choice_is_grid(choice), choice_reserve_level(choice));
}

struct Point {
  int index;  // into the layer's candidates
  int64_t cost;
  double error;
};

// The candidates on the lower convex hull of one row's (cost, error) points, from the cheapest up
// to its least error, as a mask (bit k for candidate k): only the upgrades a greedy should ever
// take, in order of decreasing error drop per bit. A mask per row instead of a list of points
// keeps the allocator at a few bytes per row (70B: 6.7M rows).
uint64_t hull_mask(const ErrorTable& t, int64_t row, std::span<const Candidate> cand,
                   double scale) {
  Point pts[kMaxCandidates];
  int n = 0, best = 0;
  for (const Candidate& c : cand) {
    pts[n] = {n, c.cost, scale * candidate_error(t, row, c.choice)};
    if (pts[n].error < pts[best].error) best = n;
    ++n;
  }
  Point hull[kMaxCandidates];
  int h = 0;
  for (int k = 0; k <= best; ++k) {
    const Point& p = pts[k];
    if (h >= 1 && p.cost == hull[h - 1].cost) {  // same price: keep the better one
      if (!(p.error < hull[h - 1].error)) continue;
      --h;
    }
    while (h >= 2) {
      const Point& a = hull[h - 2];
      const Point& b = hull[h - 1];
      const double cross = static_cast<double>(b.cost - a.cost) * (p.error - a.error) -
                           (b.error - a.error) * static_cast<double>(p.cost - a.cost);
      if (cross > 0.0) break;  // b lies strictly below the chord a-p: keep it
      --h;
    }
    hull[h++] = p;
  }
  uint64_t mask = 0;
  for (int k = 0; k < h; ++k) mask |= uint64_t{1} << hull[k].index;
  return mask;
}

// The next candidate above index k on the hull, or -1.
int next_on_hull(uint64_t mask, int k) {
  for (int c = k + 1; c < static_cast<int>(kMaxCandidates); ++c)
    if (mask & (uint64_t{1} << c)) return c;
  return -1;
}

int first_on_hull(uint64_t mask) {
  return next_on_hull(mask, -1);
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
  // Global row r belongs to the layer l with first_row[l] <= r < first_row[l + 1].
  std::vector<int64_t> first_row(layers.size() + 1, 0);
  int64_t cost = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerErrors& le = layers[l];
    if (le.table == nullptr || le.cols <= 0 || !(le.error_scale > 0.0) || le.extra_bits < 0 ||
        le.table->b_min < 1 || le.table->b_max > 8 || le.table->b_min > le.table->b_max)
      fail(ErrorKind::kInternal, "allocation: layer {} has no table, columns, scale or bit range",
           l);
    out.weights += le.table->rows * le.cols;
    if (le.table->has_grid() && le.table->e_grid.size() != le.table->e.size())
      fail(ErrorKind::kInternal, "allocation: layer {} has {} grid errors for {}", l,
           le.table->e_grid.size(), le.table->e.size());
    if (le.table->e_reserved.size() != le.table->reserve_counts.size() ||
        le.table->reserve_levels() > kMaxReserveLevel + 1)
      fail(ErrorKind::kInternal, "allocation: layer {} has {} reserved tables for {} counts", l,
           le.table->e_reserved.size(), le.table->reserve_counts.size());
    for (const auto& part : le.table->e_reserved)
      if (part.size() != le.table->e.size())
        fail(ErrorKind::kInternal, "allocation: layer {} has {} reserved errors for {}", l,
             part.size(), le.table->e.size());
    cost += le.extra_bits + lut_layer_overhead_bits(le.cols, le.has_alpha) +
            le.table->rows * layer_candidates(*le.table, le.cols, options.entries).front().cost;
    first_row[l + 1] = first_row[l] + le.table->rows;
  }
  const int64_t rows = first_row.back();
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

  std::vector<std::vector<Candidate>> cand(layers.size());
  for (size_t l = 0; l < layers.size(); ++l)
    cand[l] = layer_candidates(*layers[l].table, layers[l].cols, options.entries);
  std::vector<uint64_t> mask(static_cast<size_t>(rows));
  std::vector<uint8_t> at(static_cast<size_t>(rows));  // index into the row's layer's candidates
  for (size_t l = 0; l < layers.size(); ++l)
    for (int64_t r = first_row[l]; r < first_row[l + 1]; ++r) {
      mask[r] = hull_mask(*layers[l].table, r - first_row[l], cand[l], layers[l].error_scale);
      at[r] = static_cast<uint8_t>(first_on_hull(mask[r]));
    }
  const auto layer_of = [&](int64_t r) {
    return static_cast<size_t>(std::upper_bound(first_row.begin(), first_row.end(), r) -
                               first_row.begin() - 1);
  };
  // The step of row r to candidate `next`: its error drop per extra bit, and the extra bits.
  const auto step_of = [&](int64_t r, int next, int64_t* extra) {
    const size_t l = layer_of(r);
    const LayerErrors& le = layers[l];
    const int64_t i = r - first_row[l];
    const Candidate& from = cand[l][at[r]];
    const Candidate& to = cand[l][static_cast<size_t>(next)];
    *extra = to.cost - from.cost;
    return le.error_scale *
           (candidate_error(*le.table, i, from.choice) - candidate_error(*le.table, i, to.choice)) /
           static_cast<double>(*extra);
  };

  std::priority_queue<Step> heap;
  const auto push_next = [&](int64_t r) {
    const int next = next_on_hull(mask[r], at[r]);
    if (next < 0) return;
    int64_t extra = 0;
    heap.push({step_of(r, next, &extra), r});
  };
  for (int64_t r = 0; r < rows; ++r) push_next(r);
  while (!heap.empty()) {
    const Step s = heap.top();
    heap.pop();
    const int next = next_on_hull(mask[s.row], at[s.row]);
    int64_t extra = 0;
    step_of(s.row, next, &extra);
    if (cost + extra > out.budget_bits) {
      if (!options.fill_up) break;
      continue;  // this row's later steps need this one first: the row is done
    }
    cost += extra;
    at[s.row] = static_cast<uint8_t>(next);
    push_next(s.row);
  }

  out.layers.resize(layers.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerErrors& le = layers[l];
    BitAllocation& a = out.layers[l];
    a.weights = le.table->rows * le.cols;
    a.cost_bits = le.extra_bits + lut_layer_overhead_bits(le.cols, le.has_alpha);
    a.bits.resize(static_cast<size_t>(le.table->rows));
    for (int64_t i = 0; i < le.table->rows; ++i) {
      const Candidate& c = cand[l][at[first_row[l] + i]];
      a.bits[i] = c.choice;
      a.cost_bits += c.cost;
      a.error += le.error_scale * candidate_error(*le.table, i, c.choice);
    }
    a.average_bits = static_cast<double>(a.cost_bits) / static_cast<double>(a.weights);
  }
  out.cost_bits = cost;
  out.average_bits = static_cast<double>(cost) / static_cast<double>(out.weights);
  SKIM_ASSERT(cost <= out.budget_bits);
  return out;
}

BitAllocation allocate_bits(const ErrorTable& table, int64_t cols, double bits_per_weight,
                            bool has_alpha, const AllocationOptions& options, int64_t extra_bits) {
  const LayerErrors one{&table, cols, has_alpha, 1.0, extra_bits};
  GlobalAllocation g =
      allocate_bits_global(std::span<const LayerErrors>(&one, 1), bits_per_weight, options);
  return std::move(g.layers.front());
}

}  // namespace skim::quant
