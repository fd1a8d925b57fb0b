#include "src/quant/kmeans1d.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "src/core/error.h"

namespace skim::quant {
namespace {

constexpr int kMaxLloydIterations = 200;
// Candidate ranges at least this long go through the vectorised cost loop.
constexpr int64_t kVectorRange = 16;

// The row sorted ascending (ties by index) with prefix sums of g, g v, g v^2. Values are shifted
// by their weighted mean first, so the variance formula loses little to cancellation.
struct SortedRow {
  std::vector<int32_t> order;  // sorted position -> original index
  std::vector<double> v;       // sorted values (shifted)
  std::vector<double> p0, p1, p2;
  double shift = 0.0;

  int64_t size() const { return static_cast<int64_t>(v.size()); }
  double weight(int64_t a, int64_t b) const { return p0[b] - p0[a]; }
  // Weighted squared deviation of the sorted run [a, b) from its weighted mean.
  double cost(int64_t a, int64_t b) const {
    const double s0 = p0[b] - p0[a];
    if (s0 <= 0.0) return 0.0;
    const double s1 = p1[b] - p1[a];
    return std::max(0.0, (p2[b] - p2[a]) - s1 * s1 / s0);
  }
  // Weighted mean of [a, b) (plain mean when the run carries no weight), unshifted.
  double mean(int64_t a, int64_t b) const {
    const double s0 = p0[b] - p0[a];
    if (s0 > 0.0) return (p1[b] - p1[a]) / s0 + shift;
    double s = 0.0;
    for (int64_t t = a; t < b; ++t) s += v[t];
    return s / static_cast<double>(b - a) + shift;
  }
};

// The bits of x as an unsigned integer in the order of the values (-0 and +0 equal).
uint32_t sortable_bits(float x) {
  if (x == 0.0f) x = 0.0f;
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

SortedRow sort_row(std::span<const float> w, std::span<const float> f) {
  const auto n = static_cast<int64_t>(w.size());
  SortedRow r;
  // Sorting (value, index) pairs packed into one integer key gives the same order as comparing
  // values and breaking ties by index, at a fraction of the cost of an indirect comparison.
  std::vector<uint64_t> keys(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) keys[j] = (uint64_t{sortable_bits(w[j])} << 32) | uint64_t(j);
  std::sort(keys.begin(), keys.end());
  r.order.resize(n);
  for (int64_t s = 0; s < n; ++s) r.order[s] = static_cast<int32_t>(keys[s] & 0xffffffffu);
  double total = 0.0;
  for (const float x : f) total += x;
  const bool uniform = !(total > 0.0);
  std::vector<double> g(n);
  double s1 = 0.0;
  for (int64_t s = 0; s < n; ++s) {
    g[s] = uniform ? 1.0 : static_cast<double>(f[r.order[s]]);
    s1 += g[s] * w[r.order[s]];
  }
  r.shift = s1 / (uniform ? static_cast<double>(n) : total);
  r.v.resize(n);
  r.p0.assign(n + 1, 0.0);
  r.p1.assign(n + 1, 0.0);
  r.p2.assign(n + 1, 0.0);
  for (int64_t s = 0; s < n; ++s) {
    const double x = static_cast<double>(w[r.order[s]]) - r.shift;
    r.v[s] = x;
    r.p0[s + 1] = r.p0[s] + g[s];
    r.p1[s + 1] = r.p1[s] + g[s] * x;
    r.p2[s + 1] = r.p2[s] + g[s] * x * x;
  }
  return r;
}

// Labels and centroids from segment boundaries bounds[0]=0 < ... < bounds[k]=n.
KMeans1dResult from_boundaries(const SortedRow& r, const std::vector<int64_t>& bounds, int k) {
  KMeans1dResult out;
  const int segments = static_cast<int>(bounds.size()) - 1;
  out.centroids.resize(k);
  out.labels.resize(r.size());
  for (int c = 0; c < segments; ++c) {
    out.centroids[c] = static_cast<float>(r.mean(bounds[c], bounds[c + 1]));
    for (int64_t s = bounds[c]; s < bounds[c + 1]; ++s)
      out.labels[r.order[s]] = static_cast<uint8_t>(c);
  }
  for (int c = segments; c < k; ++c) out.centroids[c] = out.centroids[segments - 1];
  return out;
}

// The DP's candidate costs prev[j] + cost(j, i) for j in [jlo, jhi], also compiled for AVX-512
// and AVX2 (the divisions vectorise); no FMA contraction, so every version rounds alike.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"),
               optimize("fp-contract=off")))
#endif
void candidate_costs(const double* q0, const double* q1, const double* q2, const double* prev,
                     int64_t i, int64_t jlo, int64_t jhi, double* out) {
  const double a0 = q0[i], a1 = q1[i], a2 = q2[i];
  for (int64_t j = jlo; j <= jhi; ++j) {
    const double s0 = a0 - q0[j];
    const double s1 = a1 - q1[j];
    const double v = (a2 - q2[j]) - s1 * s1 / s0;
    out[j] = prev[j] + (s0 <= 0.0 ? 0.0 : (v > 0.0 ? v : 0.0));
  }
}

// Exact DP over split points restricted to `edges` (sorted positions, edges[0] = 0, back = n),
// up to kmax segments. Row kk of `opt` holds, for each prefix of edges, where the last of kk + 1
// segments starts; the DP for kk + 1 segments does not depend on kmax, so one table serves every
// cluster count up to kmax.
class ExactDp {
 public:
  ExactDp(const SortedRow& r, const std::vector<int64_t>& edges, int kmax, bool naive)
      : edges_(edges) {
    const int64_t n = static_cast<int64_t>(edges.size()) - 1;
    q0_.resize(n + 1);
    q1_.resize(n + 1);
    q2_.resize(n + 1);
    for (int64_t e = 0; e <= n; ++e) {
      q0_[e] = r.p0[edges[e]];
      q1_[e] = r.p1[edges[e]];
      q2_[e] = r.p2[edges[e]];
    }
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<double> prev(n + 1, inf), cur(n + 1, inf), cost(n + 1);
    opt_.assign(static_cast<size_t>(kmax), std::vector<int32_t>(n + 1, 0));
    for (int64_t i = 1; i <= n; ++i) prev[i] = seg_cost(0, i);
    for (int kk = 1; kk < kmax; ++kk) {  // kk + 1 segments
      std::fill(cur.begin(), cur.end(), inf);
      const double* q0 = q0_.data();
      const double* q1 = q1_.data();
      const double* q2 = q2_.data();
      const double* pv = prev.data();
      double* cv = cur.data();
      int32_t* ov = opt_[kk].data();
      // The first minimum over j in [jlo, jhi] of prev[j] + cost(j, i). Plain pointers: the
      // loop reloads nothing per iteration.
      double* cb = cost.data();
      auto best_for = [q0, q1, q2, pv, cv, ov, cb, inf](int64_t i, int64_t jlo, int64_t jhi) {
        double best = inf;
        int64_t arg = jlo;
        if (jhi - jlo >= kVectorRange) {
          candidate_costs(q0, q1, q2, pv, i, jlo, jhi, cb);
          for (int64_t j = jlo; j <= jhi; ++j) {
            if (cb[j] < best) {
              best = cb[j];
              arg = j;
            }
          }
        } else {
          const double a0 = q0[i], a1 = q1[i], a2 = q2[i];
          for (int64_t j = jlo; j <= jhi; ++j) {
            const double s0 = a0 - q0[j];
            const double s1 = a1 - q1[j];
            const double v = (a2 - q2[j]) - s1 * s1 / s0;
            const double c = pv[j] + (s0 <= 0.0 ? 0.0 : (v > 0.0 ? v : 0.0));
            if (c < best) {
              best = c;
              arg = j;
            }
          }
        }
        cv[i] = best;
        ov[i] = static_cast<int32_t>(arg);
        return arg;
      };
      if (naive) {
        for (int64_t i = kk + 1; i <= n; ++i) best_for(i, kk, i - 1);
      } else {
        // Divide and conquer on the monotone split point: opt(i) <= opt(i + 1).
        struct Range {
          int64_t lo, hi, jlo, jhi;
        };
        std::vector<Range> stack{{kk + 1, n, kk, n - 1}};
        while (!stack.empty()) {
          const Range q = stack.back();
          stack.pop_back();
          if (q.lo > q.hi) continue;
          const int64_t mid = (q.lo + q.hi) / 2;
          const int64_t arg = best_for(mid, q.jlo, std::min(q.jhi, mid - 1));
          stack.push_back({q.lo, mid - 1, q.jlo, arg});
          stack.push_back({mid + 1, q.hi, arg, q.jhi});
        }
      }
      std::swap(prev, cur);
    }
  }

  // Segment boundaries (sorted positions) of the optimal split into k <= kmax segments.
  std::vector<int64_t> boundaries(int k) const {
    const int64_t n = static_cast<int64_t>(edges_.size()) - 1;
    std::vector<int64_t> bounds(k + 1);
    bounds[k] = n;
    int64_t i = n;
    for (int kk = k - 1; kk >= 1; --kk) {
      i = opt_[kk][i];
      bounds[kk] = i;
    }
    bounds[0] = 0;
    for (auto& b : bounds) b = edges_[b];
    return bounds;
  }

 private:
  // Weighted squared deviation of edges [a, b) from their mean (SortedRow::cost on edges).
  double seg_cost(int64_t a, int64_t b) const {
    const double s0 = q0_[b] - q0_[a];
    if (s0 <= 0.0) return 0.0;
    const double s1 = q1_[b] - q1_[a];
    return std::max(0.0, (q2_[b] - q2_[a]) - s1 * s1 / s0);
  }

  const std::vector<int64_t>& edges_;
  std::vector<double> q0_, q1_, q2_;
  std::vector<std::vector<int32_t>> opt_;
};

std::vector<int64_t> all_edges(int64_t n) {
  std::vector<int64_t> e(n + 1);
  std::iota(e.begin(), e.end(), 0);
  return e;
}

// Lloyd on the sorted row. Start: the exact DP restricted to split points at the quantiles
// of a coarse grid (equal-count, equal-weight and equal-value-step edges, kCoarseBins each), which
// already isolates heavy tails and heavy-weight values; plain quantile starts land in poor local
// optima on heavy-tailed rows. Each iteration: boundaries at centroid midpoints (binary search),
// centroids = segment weighted means (prefix sums).
constexpr int64_t kCoarseBins = 128;

// The split points the DP may use: every position for short rows, else the coarse grid.
std::vector<int64_t> dp_edges(const SortedRow& r, KMeansSolver solver) {
  const int64_t n = r.size();
  if (solver != KMeansSolver::kLloyd || n <= 2 * kCoarseBins) return all_edges(n);
  std::vector<int64_t> edges;
  edges.reserve(3 * kCoarseBins + 3);
  const double total = r.p0[n];
  for (int64_t b = 0; b <= kCoarseBins; ++b) {
    edges.push_back(n * b / kCoarseBins);
    const int64_t q =
        std::lower_bound(r.p0.begin(), r.p0.end(), total * b / kCoarseBins) - r.p0.begin();
    edges.push_back(std::clamp<int64_t>(q, 0, n));
    const double t = r.v.front() + (r.v.back() - r.v.front()) * static_cast<double>(b) /
                                       static_cast<double>(kCoarseBins);
    edges.push_back(std::lower_bound(r.v.begin(), r.v.end(), t) - r.v.begin());
  }
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  return edges;
}

// Segments the DP solves for k clusters on these edges.
int dp_segments(const std::vector<int64_t>& edges, int k) {
  return std::min(k, static_cast<int>(edges.size()) - 1);
}

// Lloyd iterations from the DP's boundaries (k segments).
void lloyd_iterations(const SortedRow& r, std::vector<int64_t>& bounds, int k) {
  const int64_t n = r.size();
  std::vector<double> c(k);
  std::vector<int64_t> next(k + 1);
  for (int it = 0; it < kMaxLloydIterations; ++it) {
    for (int q = 0; q < k; ++q) c[q] = r.mean(bounds[q], bounds[q + 1]) - r.shift;
    next[0] = 0;
    next[k] = n;
    for (int q = 1; q < k; ++q) {
      const double mid = 0.5 * (c[q - 1] + c[q]);
      next[q] = std::lower_bound(r.v.begin(), r.v.end(), mid) - r.v.begin();
      next[q] = std::clamp<int64_t>(next[q], next[q - 1] + 1, n - (k - q));
    }
    if (next == bounds) break;
    // Only accept a step that lowers the objective (guards against oscillation on ties).
    double before = 0.0, after = 0.0;
    for (int q = 0; q < k; ++q) {
      before += r.cost(bounds[q], bounds[q + 1]);
      after += r.cost(next[q], next[q + 1]);
    }
    if (!(after < before)) break;
    bounds.swap(next);
  }
}

}  // namespace

namespace {

void check_row(std::span<const float> w, std::span<const float> f, int k) {
  if (k < 1 || k > 256) fail(ErrorKind::kInternal, "kmeans1d: k = {} outside [1, 256]", k);
  if (f.size() != w.size())
    fail(ErrorKind::kInternal, "kmeans1d: {} weights for {} values", f.size(), w.size());
}

// One row at several cluster counts: one sort, one DP table up to the largest count. Lloyd
// starts from the DP over the coarse grid and iterates; the exact solvers stop at the DP.
std::vector<KMeans1dResult> solve_levels(std::span<const float> w, std::span<const float> f,
                                         std::span<const int> ks, KMeansSolver solver) {
  std::vector<KMeans1dResult> out;
  out.reserve(ks.size());
  if (w.empty()) {
    for (const int k : ks) {
      out.emplace_back();
      out.back().centroids.assign(k, 0.0f);
    }
    return out;
  }
  const SortedRow r = sort_row(w, f);
  const std::vector<int64_t> edges = dp_edges(r, solver);
  int kmax = 1;
  for (const int k : ks)
    kmax = std::max(kmax, dp_segments(edges, static_cast<int>(std::min<int64_t>(k, r.size()))));
  const ExactDp dp(r, edges, kmax, solver == KMeansSolver::kExactNaive);
  for (const int k : ks) {
    const int segments = static_cast<int>(std::min<int64_t>(k, r.size()));
    const int kd = dp_segments(edges, segments);
    std::vector<int64_t> bounds = dp.boundaries(kd);
    if (solver == KMeansSolver::kLloyd && kd == segments) lloyd_iterations(r, bounds, segments);
    out.push_back(from_boundaries(r, bounds, k));
    out.back().objective = kmeans1d_objective(w, f, out.back().centroids, out.back().labels);
  }
  return out;
}

}  // namespace

KMeans1dResult kmeans1d(std::span<const float> w, std::span<const float> f, int k,
                        KMeansSolver solver) {
  check_row(w, f, k);
  const int ks[1] = {k};
  return std::move(solve_levels(w, f, ks, solver).front());
}

std::vector<KMeans1dResult> kmeans1d_levels(std::span<const float> w, std::span<const float> f,
                                            std::span<const int> ks, KMeansSolver solver) {
  for (const int k : ks) check_row(w, f, k);
  return solve_levels(w, f, ks, solver);
}

double kmeans1d_objective(std::span<const float> w, std::span<const float> f,
                          std::span<const float> centroids, std::span<const uint8_t> labels) {
  double total_f = 0.0;
  for (const float x : f) total_f += x;
  const bool uniform = !(total_f > 0.0);
  double s = 0.0;
  for (size_t j = 0; j < w.size(); ++j) {
    const double d = static_cast<double>(w[j]) - centroids[labels[j]];
    s += (uniform ? 1.0 : static_cast<double>(f[j])) * d * d;
  }
  return s;
}

}  // namespace skim::quant
