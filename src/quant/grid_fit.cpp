#include "src/quant/grid_fit.h"

#include <algorithm>
#include <cmath>

#include "src/core/error.h"

namespace skim::quant {
namespace {

// Starts: the range with a fraction cut off each end (heavy tails make the full range waste most
// grid points on a few weights, often on one side only); the best few are refined.
constexpr double kCuts[] = {0.0, 0.08, 0.16, 0.24, 0.32, 0.4};
constexpr int kRefinedStarts = 6;
constexpr int kMaxIterations = 30;

int nearest(double u, int k, double lo, double step) {
  if (!(step > 0.0)) return 0;
  const double q = std::nearbyint((u - lo) / step);
  return static_cast<int>(std::clamp(q, 0.0, static_cast<double>(k - 1)));
}

}  // namespace

double grid_objective(std::span<const float> u, std::span<const float> g, int k, double lo,
                      double step, uint8_t* labels) {
  double s = 0.0;
  for (size_t j = 0; j < u.size(); ++j) {
    const int l = nearest(u[j], k, lo, step);
    if (labels != nullptr) labels[j] = static_cast<uint8_t>(l);
    const double d = u[j] - (lo + step * l);
    s += g[j] * d * d;
  }
  return s;
}

GridFit fit_grid(std::span<const float> u, std::span<const float> g_in, int k) {
  if (k < 1 || k > 256 || u.size() != g_in.size())
    fail(ErrorKind::kInternal, "grid fit: k {} or sizes {} / {} invalid", k, u.size(), g_in.size());
  const size_t n = u.size();
  std::vector<float> ones;
  std::span<const float> g = g_in;
  if (std::all_of(g.begin(), g.end(), [](float x) { return !(x > 0.0f); })) {
    ones.assign(n, 1.0f);
    g = ones;
  }
  GridFit best;
  best.labels.assign(n, 0);
  if (n == 0) return best;
  double sw = 0.0, swu = 0.0;
  for (size_t j = 0; j < n; ++j) {
    sw += g[j];
    swu += g[j] * u[j];
  }
  const auto [mn_it, mx_it] = std::minmax_element(u.begin(), u.end());
  const double mn = *mn_it, mx = *mx_it;
  // One level, or nothing to spread: the weighted mean is the exact optimum.
  best.lo = sw > 0.0 ? swu / sw : mn;
  best.objective = grid_objective(u, g, 1, best.lo, 0.0, best.labels.data());
  if (k == 1 || !(mx > mn)) return best;

  struct Start {
    double objective, lo, step;
  };
  std::vector<Start> starts;
  const double range = mx - mn;
  for (const double a : kCuts)
    for (const double b : kCuts) {
      if (a + b >= 0.75) continue;
      const double lo = mn + a * range, step = (1.0 - a - b) * range / (k - 1);
      starts.push_back({grid_objective(u, g, k, lo, step), lo, step});
    }
  const size_t keep = std::min<size_t>(kRefinedStarts, starts.size());
  std::partial_sort(starts.begin(), starts.begin() + static_cast<std::ptrdiff_t>(keep),
                    starts.end(),
                    [](const Start& x, const Start& y) { return x.objective < y.objective; });
  std::vector<uint8_t> labels(n);
  for (size_t s = 0; s < keep; ++s) {
    double lo = starts[s].lo, step = starts[s].step;
    double obj = grid_objective(u, g, k, lo, step, labels.data());
    for (int it = 0; it < kMaxIterations; ++it) {
      double s0 = 0, s1 = 0, s2 = 0, t0 = 0, t1 = 0;
      for (size_t j = 0; j < n; ++j) {
        const double l = labels[j], w = g[j];
        s0 += w;
        s1 += w * l;
        s2 += w * l * l;
        t0 += w * u[j];
        t1 += w * l * u[j];
      }
      const double det = s0 * s2 - s1 * s1;
      if (!(det > 0.0)) break;  // one label only: the grid cannot be refitted
      const double new_step = (s0 * t1 - s1 * t0) / det;
      if (!(new_step > 0.0)) break;
      const double new_lo = (t0 - new_step * s1) / s0;
      const double new_obj = grid_objective(u, g, k, new_lo, new_step, labels.data());
      if (!(new_obj < obj)) break;  // labels now belong to the rejected grid: recomputed below
      const bool settled = obj - new_obj <= 1e-12 * obj;
      lo = new_lo;
      step = new_step;
      obj = new_obj;
      if (settled) break;
    }
    if (obj < best.objective) {
      best.objective = grid_objective(u, g, k, lo, step, best.labels.data());
      best.lo = lo;
      best.step = step;
    }
  }
  return best;
}

}  // namespace skim::quant
