// Weighted 1-D K-means per row on the GPU, mirroring src/quant/kmeans1d.cpp step by step:
// stable sort, shift by the weighted mean, prefix sums in double, the exact DP over the coarse
// grid of split points (equal-count, equal-weight and equal-value-step edges) as the start,
// then Lloyd with binary-searched boundaries, accepting only steps that lower the objective.
// The DP scans every split point (O(E^2) per level, E <= 387 for the coarse grid) instead of
// the CPU's monotone divide and conquer: the optimum is the same, only ties may pick another
// split. Sums run in another order than on the CPU, so results agree to rounding, not bits.
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include <algorithm>
#include <vector>

#include "kernels/cuda/kmeans1d.cuh"

namespace skim::kernels::gpu {
namespace {

constexpr int kThreads = 256;  // per row; also the largest k (one thread per centroid)
constexpr int kMaxK = 256;
constexpr int kMaxLloydIterations = 200;
constexpr int64_t kCoarseBins = 128;
constexpr int kMaxCoarseEdges = 3 * (kCoarseBins + 1);  // before removing duplicates

__device__ inline double infinity() {
  return __longlong_as_double(0x7ff0000000000000LL);
}

struct Triple {
  double a, b, c;
};
struct TripleSum {
  __device__ Triple operator()(const Triple& x, const Triple& y) const {
    return {x.a + y.a, x.b + y.b, x.c + y.c};
  }
};
// Running prefix across the tiles of one row's block scan.
struct RunningPrefix {
  Triple total;
  __device__ Triple operator()(const Triple& tile) {
    const Triple old = total;
    total = TripleSum()(total, tile);
    return old;
  }
};

__global__ void iota_rows(int* order, int64_t rows, int64_t cols, int* offsets) {
  const int64_t total = rows * cols;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < total;
       t += int64_t{gridDim.x} * blockDim.x)
    order[t] = static_cast<int>(t % cols);
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t <= rows;
       t += int64_t{gridDim.x} * blockDim.x)
    offsets[t] = static_cast<int>(t * cols);
}

// u = alpha w and g = f / alpha^2 in fp32, as the twin's group_rows.
__global__ void scale_rows(const float* w, const float* f, int64_t f_stride, const float* alpha,
                           int64_t rows, int64_t cols, float* u, float* g) {
  const int64_t total = rows * cols;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < total;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = t / cols, j = t % cols;
    const float a = alpha[j];
    u[t] = a * w[t];
    if (f_stride != 0 || i == 0) g[i * f_stride + j] = f[i * f_stride + j] / (a * a);
  }
}

// Per row: shift (weighted mean), the uniform fallback flag and p0, p1, p2 [n + 1].
__global__ void __launch_bounds__(kThreads)
    prefix_rows(const float* keys, const int* order, const float* g, int64_t g_stride, int64_t n,
                double* p0, double* p1, double* p2, double* shift_out, int* uniform_out) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  using Scan = cub::BlockScan<Triple, kThreads>;
  __shared__ union {
    typename Reduce::TempStorage reduce;
    typename Scan::TempStorage scan;
  } tmp;
  __shared__ double sh_shift;
  __shared__ int sh_uniform;
  const int64_t row = blockIdx.x;
  const float* kr = keys + row * n;
  const int* orow = order + row * n;
  const float* gr = g + row * g_stride;
  double* q0 = p0 + row * (n + 1);
  double* q1 = p1 + row * (n + 1);
  double* q2 = p2 + row * (n + 1);

  double tf = 0.0, tw = 0.0, tu = 0.0;
  for (int64_t s = threadIdx.x; s < n; s += kThreads) {
    const double gv = gr[orow[s]];
    tf += gv;
    tw += gv * kr[s];
    tu += kr[s];
  }
  const double total = Reduce(tmp.reduce).Sum(tf);
  __syncthreads();
  const double sum_gw = Reduce(tmp.reduce).Sum(tw);
  __syncthreads();
  const double sum_w = Reduce(tmp.reduce).Sum(tu);
  if (threadIdx.x == 0) {
    const bool uniform = !(total > 0.0);
    sh_uniform = uniform ? 1 : 0;
    sh_shift = uniform ? sum_w / static_cast<double>(n) : sum_gw / total;
    shift_out[row] = sh_shift;
    uniform_out[row] = sh_uniform;
    q0[0] = q1[0] = q2[0] = 0.0;
  }
  __syncthreads();
  const double shift = sh_shift;
  const bool uniform = sh_uniform != 0;
  RunningPrefix prefix{{0.0, 0.0, 0.0}};
  for (int64_t base = 0; base < n; base += kThreads) {
    const int64_t s = base + threadIdx.x;
    Triple x{0.0, 0.0, 0.0};
    if (s < n) {
      const double gv = uniform ? 1.0 : static_cast<double>(gr[orow[s]]);
      const double v = static_cast<double>(kr[s]) - shift;
      x = {gv, gv * v, gv * v * v};
    }
    Triple y;
    Scan(tmp.scan).InclusiveScan(x, y, TripleSum(), prefix);
    if (s < n) {
      q0[s + 1] = y.a;
      q1[s + 1] = y.b;
      q2[s + 1] = y.c;
    }
    __syncthreads();
  }
}

// Weighted squared deviation of the run between prefix entries a < b (the twin's cost()).
__device__ inline double run_cost(const double* q0, const double* q1, const double* q2, int64_t a,
                                  int64_t b) {
  const double s0 = q0[b] - q0[a];
  if (s0 <= 0.0) return 0.0;
  const double s1 = q1[b] - q1[a];
  return fmax(0.0, (q2[b] - q2[a]) - s1 * s1 / s0);
}

// First position s in [0, n) with keys[s] - shift >= target (n when none).
__device__ inline int64_t lower_bound_value(const float* keys, int64_t n, double shift,
                                            double target) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (static_cast<double>(keys[mid]) - shift < target)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

__device__ inline int64_t lower_bound_double(const double* v, int64_t count, double target) {
  int64_t lo = 0, hi = count;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (v[mid] < target)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

// Weighted mean of sorted positions [a, b) minus the shift; the plain mean when the run
// carries no weight (the twin's mean() - shift).
__device__ double run_mean_shifted(const float* keys, const double* p0, const double* p1,
                                   double shift, int64_t a, int64_t b) {
  const double s0 = p0[b] - p0[a];
  if (s0 > 0.0) return (p1[b] - p1[a]) / s0;
  double s = 0.0;
  for (int64_t t = a; t < b; ++t) s += static_cast<double>(keys[t]) - shift;
  return s / static_cast<double>(b - a);
}

// Exact DP over the split points 0..e (prefix arrays q* indexed by split point) into k runs.
// Writes the boundaries as split-point indices into bounds[0..k]. Block-cooperative.
__device__ void dp_runs(int64_t e, const double* q0, const double* q1, const double* q2, int k,
                        double* prev, double* cur, int* opt, int* bounds) {
  const double inf = infinity();
  for (int64_t i = threadIdx.x; i <= e; i += kThreads)
    prev[i] = i == 0 ? inf : run_cost(q0, q1, q2, 0, i);
  __syncthreads();
  for (int kk = 1; kk < k; ++kk) {  // kk + 1 runs
    for (int64_t i = threadIdx.x; i <= e; i += kThreads) {
      double best = inf;
      int64_t arg = kk;
      for (int64_t j = kk; j < i; ++j) {  // empty unless i >= kk + 1
        const double c = prev[j] + run_cost(q0, q1, q2, j, i);
        if (c < best) {
          best = c;
          arg = j;
        }
      }
      cur[i] = best;
      opt[kk * (e + 1) + i] = static_cast<int>(arg);
    }
    __syncthreads();
    double* t = prev;
    prev = cur;
    cur = t;
  }
  if (threadIdx.x == 0) {
    bounds[k] = static_cast<int>(e);
    int64_t i = e;
    for (int kk = k - 1; kk >= 1; --kk) {
      i = opt[kk * (e + 1) + i];
      bounds[kk] = static_cast<int>(i);
    }
    bounds[0] = 0;
  }
  __syncthreads();
}

struct SolveArgs {
  const float* keys;
  const double* p0;
  const double* p1;
  const double* p2;
  const double* shift;
  int64_t n;
  int k;
  const int* k_row;
  bool exact;
  double* dp_values;  // exact: [rows][2 (n + 1)]
  int* dp_opt;        // [rows][k_max * dp_points]
  int64_t dp_points;
  int k_max;
  int* bounds;  // [rows][k_max + 1] sorted positions
  int* segments;
  float* centroids;  // nullable
  int64_t k_stride;
};

__global__ void __launch_bounds__(kThreads) solve_rows(SolveArgs a) {
  __shared__ int edges[kMaxCoarseEdges + 1];
  __shared__ int raw[3][kCoarseBins + 1];
  __shared__ double q[3][kMaxCoarseEdges + 1];
  __shared__ double dp_shared[2][kMaxCoarseEdges + 1];
  __shared__ double c[kMaxK];
  __shared__ int bnd[kMaxK + 1], nxt[kMaxK + 1];
  __shared__ int sh_edges, sh_segments, sh_stop;

  const int64_t row = blockIdx.x;
  const int64_t n = a.n;
  const float* keys = a.keys + row * n;
  const double* p0 = a.p0 + row * (n + 1);
  const double* p1 = a.p1 + row * (n + 1);
  const double* p2 = a.p2 + row * (n + 1);
  const double shift = a.shift[row];
  const int k_req = a.k_row != nullptr ? a.k_row[row] : a.k;
  int* opt = a.dp_opt + row * a.k_max * a.dp_points;
  int segments = static_cast<int>(k_req < n ? k_req : n);

  if (a.exact) {
    double* prev = a.dp_values + row * 2 * (n + 1);
    dp_runs(n, p0, p1, p2, segments, prev, prev + (n + 1), opt, bnd);
  } else if (n <= 2 * kCoarseBins) {
    dp_runs(n, p0, p1, p2, segments, dp_shared[0], dp_shared[1], opt, bnd);
  } else {
    // The coarse grid: three sorted edge lists, merged without duplicates.
    const double total = p0[n];
    const double v_front = static_cast<double>(keys[0]) - shift;
    const double v_back = static_cast<double>(keys[n - 1]) - shift;
    for (int64_t b = threadIdx.x; b <= kCoarseBins; b += kThreads) {
      raw[0][b] = static_cast<int>(n * b / kCoarseBins);
      int64_t qw = lower_bound_double(p0, n + 1, total * static_cast<double>(b) / kCoarseBins);
      raw[1][b] = static_cast<int>(qw < 0 ? 0 : (qw > n ? n : qw));
      const double t =
          v_front + (v_back - v_front) * static_cast<double>(b) / static_cast<double>(kCoarseBins);
      raw[2][b] = static_cast<int>(lower_bound_value(keys, n, shift, t));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int ia = 0, ib = 0, ic = 0, count = 0;
      const int len = kCoarseBins + 1;
      while (ia < len || ib < len || ic < len) {
        int v = 0x7fffffff;
        if (ia < len) v = min(v, raw[0][ia]);
        if (ib < len) v = min(v, raw[1][ib]);
        if (ic < len) v = min(v, raw[2][ic]);
        while (ia < len && raw[0][ia] == v) ++ia;
        while (ib < len && raw[1][ib] == v) ++ib;
        while (ic < len && raw[2][ic] == v) ++ic;
        edges[count++] = v;
      }
      sh_edges = count - 1;
    }
    __syncthreads();
    const int e = sh_edges;
    for (int t = threadIdx.x; t <= e; t += kThreads) {
      q[0][t] = p0[edges[t]];
      q[1][t] = p1[edges[t]];
      q[2][t] = p2[edges[t]];
    }
    __syncthreads();
    const int kc = segments < e ? segments : e;
    dp_runs(e, q[0], q[1], q[2], kc, dp_shared[0], dp_shared[1], opt, bnd);
    if (threadIdx.x <= kc) bnd[threadIdx.x] = edges[bnd[threadIdx.x]];
    segments = kc;  // fewer distinct edges than clusters: no Lloyd, as in the twin
    __syncthreads();
    if (kc == (k_req < n ? k_req : n)) {
      const int k = kc;
      for (int it = 0; it < kMaxLloydIterations; ++it) {
        if (threadIdx.x < k)
          c[threadIdx.x] =
              run_mean_shifted(keys, p0, p1, shift, bnd[threadIdx.x], bnd[threadIdx.x + 1]);
        __syncthreads();
        if (threadIdx.x >= 1 && threadIdx.x < k) {
          const double mid = 0.5 * (c[threadIdx.x - 1] + c[threadIdx.x]);
          nxt[threadIdx.x] = static_cast<int>(lower_bound_value(keys, n, shift, mid));
        }
        __syncthreads();
        if (threadIdx.x == 0) {
          nxt[0] = 0;
          nxt[k] = static_cast<int>(n);
          bool same = true;
          for (int t = 1; t < k; ++t) {
            const int lo = nxt[t - 1] + 1, hi = static_cast<int>(n) - (k - t);
            nxt[t] = nxt[t] < lo ? lo : (nxt[t] > hi ? hi : nxt[t]);
          }
          for (int t = 0; t <= k; ++t) same = same && nxt[t] == bnd[t];
          int stop = same ? 1 : 0;
          if (!same) {
            double before = 0.0, after = 0.0;
            for (int t = 0; t < k; ++t) {
              before += run_cost(p0, p1, p2, bnd[t], bnd[t + 1]);
              after += run_cost(p0, p1, p2, nxt[t], nxt[t + 1]);
            }
            if (!(after < before))
              stop = 1;
            else
              for (int t = 0; t <= k; ++t) bnd[t] = nxt[t];
          }
          sh_stop = stop;
        }
        __syncthreads();
        if (sh_stop) break;
      }
    }
  }
  if (threadIdx.x == 0) sh_segments = segments;
  __syncthreads();
  segments = sh_segments;
  int* bout = a.bounds + row * (a.k_max + 1);
  if (threadIdx.x <= segments) bout[threadIdx.x] = bnd[threadIdx.x];
  if (threadIdx.x == 0) a.segments[row] = segments;
  if (a.centroids != nullptr && threadIdx.x < k_req) {
    const int s = threadIdx.x < segments ? threadIdx.x : segments - 1;
    a.centroids[row * a.k_stride + threadIdx.x] =
        static_cast<float>(run_mean_shifted(keys, p0, p1, shift, bnd[s], bnd[s + 1]) + shift);
  }
}

// Labels in the original order and the objective with the fp32 centroids (the twin's
// kmeans1d_objective).
__global__ void __launch_bounds__(kThreads)
    label_rows(const float* keys, const int* order, const float* g, int64_t g_stride,
               const int* uniform, int64_t n, const int* bounds, int k_max, const int* segments,
               const float* centroids, int64_t k_stride, uint8_t* labels, double* objective) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  __shared__ int bnd[kMaxK + 1];
  __shared__ float cent[kMaxK];
  const int64_t row = blockIdx.x;
  const int seg = segments[row];
  const int* brow = bounds + row * (k_max + 1);
  const float* kr = keys + row * n;
  const int* orow = order + row * n;
  const float* gr = g + row * g_stride;
  const bool flat = uniform[row] != 0;
  for (int t = threadIdx.x; t <= seg; t += kThreads) bnd[t] = brow[t];
  __syncthreads();
  for (int t = threadIdx.x; t < seg; t += kThreads) cent[t] = centroids[row * k_stride + t];
  __syncthreads();
  double acc = 0.0;
  for (int64_t s = threadIdx.x; s < n; s += kThreads) {
    int lo = 0, hi = seg - 1;  // last run whose start is <= s
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (bnd[mid] <= s)
        lo = mid;
      else
        hi = mid - 1;
    }
    const int j = orow[s];
    if (labels != nullptr) labels[row * n + j] = static_cast<uint8_t>(lo);
    const double d = static_cast<double>(kr[s]) - static_cast<double>(cent[lo]);
    acc += (flat ? 1.0 : static_cast<double>(gr[j])) * d * d;
  }
  const double total = Reduce(tmp).Sum(acc);
  if (threadIdx.x == 0 && objective != nullptr) objective[row] = total;
}

int grid_for(int64_t n) {
  const int64_t blocks = (n + 255) / 256;
  return static_cast<int>(std::clamp<int64_t>(blocks, 1, 65535 * 8));
}

int64_t dp_points_for(int64_t cols, KMeansMode mode) {
  return mode == KMeansMode::kExact ? cols + 1 : kMaxCoarseEdges + 1;
}

}  // namespace

int64_t RowKMeans::rows_per_chunk(int64_t cols, int k_max, KMeansMode mode, int64_t budget_bytes) {
  const int64_t per_row = cols * (4 * 5 + 4 * 2) + 3 * 8 * (cols + 1) +
                          4 * k_max * dp_points_for(cols, mode) +
                          (mode == KMeansMode::kExact ? 2 * 8 * (cols + 1) : 0) + 4 * (k_max + 8);
  int64_t r = budget_bytes / std::max<int64_t>(per_row, 1);
  r = std::min<int64_t>(r, (int64_t{1} << 30) / std::max<int64_t>(cols, 1));  // int offsets
  return std::max<int64_t>(r, 1);
}

RowKMeans::RowKMeans(int64_t max_rows, int64_t cols, int k_max, KMeansMode mode,
                     cudaStream_t stream)
    : max_rows_(max_rows),
      cols_(cols),
      k_max_(k_max),
      mode_(mode),
      dp_points_(dp_points_for(cols, mode)) {
  if (cols <= 0 || max_rows <= 0) throw_invalid_argument("kmeans_rows", "empty matrix");
  if (k_max < 1 || k_max > kMaxK) throw_invalid_argument("kmeans_rows", "k outside [1, 256]");
  if (max_rows * cols >= (int64_t{1} << 31))
    throw_invalid_argument("kmeans_rows", "chunk exceeds 2^31 values");
  const auto r = static_cast<size_t>(max_rows), n = static_cast<size_t>(cols);
  keys_in_.resize(r * n);
  keys_.resize(r * n);
  g_scaled_.resize(r * n);
  order_in_.resize(r * n);
  order_.resize(r * n);
  offsets_.resize(r + 1);
  bounds_.resize(r * static_cast<size_t>(k_max + 1));
  segments_.resize(r);
  uniform_.resize(r);
  p_.resize(3 * r * (n + 1));
  shift_.resize(r);
  if (mode == KMeansMode::kExact) dp_values_.resize(2 * r * (n + 1));
  dp_opt_.resize(r * static_cast<size_t>(k_max) * static_cast<size_t>(dp_points_));
  iota_rows<<<grid_for(max_rows * cols), 256, 0, stream>>>(order_in_.data(), max_rows, cols,
                                                           offsets_.data());
  SKIM_CUDA_CHECK_LAUNCH();
}

void RowKMeans::prepare(const float* w, RowWeights f, const float* alpha, int64_t rows,
                        cudaStream_t stream) {
  if (rows <= 0 || rows > max_rows_) throw_invalid_argument("kmeans_rows", "bad chunk size");
  if (f.values == nullptr) throw_invalid_argument("kmeans_rows", "no K-means weights");
  rows_ = rows;
  const int64_t n = cols_;
  const float* keys_in = w;
  g_ = f.values;
  g_stride_ = f.row_stride;
  if (alpha != nullptr) {
    scale_rows<<<grid_for(rows * n), 256, 0, stream>>>(w, f.values, f.row_stride, alpha, rows, n,
                                                       keys_in_.data(), g_scaled_.data());
    SKIM_CUDA_CHECK_LAUNCH();
    keys_in = keys_in_.data();
    g_ = g_scaled_.data();
  }
  const int items = static_cast<int>(rows * n), segs = static_cast<int>(rows);
  size_t temp_bytes = 0;
  SKIM_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
      nullptr, temp_bytes, keys_in, keys_.data(), order_in_.data(), order_.data(), items, segs,
      offsets_.data(), offsets_.data() + 1, 0, 32, stream));
  if (temp_bytes > sort_temp_.size()) sort_temp_.resize(temp_bytes);
  SKIM_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
      sort_temp_.data(), temp_bytes, keys_in, keys_.data(), order_in_.data(), order_.data(), items,
      segs, offsets_.data(), offsets_.data() + 1, 0, 32, stream));
  const size_t stride = static_cast<size_t>(max_rows_) * static_cast<size_t>(n + 1);
  prefix_rows<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
      keys_.data(), order_.data(), g_, g_stride_, n, p_.data(), p_.data() + stride,
      p_.data() + 2 * stride, shift_.data(), uniform_.data());
  SKIM_CUDA_CHECK_LAUNCH();
}

void RowKMeans::solve(int k, const int* k_row, KMeansLevelOut out, cudaStream_t stream) {
  if (rows_ == 0) throw_invalid_argument("kmeans_rows", "solve before prepare");
  if (k_row == nullptr && (k < 1 || k > k_max_))
    throw_invalid_argument("kmeans_rows", "k outside [1, k_max]");
  const int64_t n = cols_;
  const size_t stride = static_cast<size_t>(max_rows_) * static_cast<size_t>(n + 1);
  // Centroids are needed for the labels' objective; keep them in scratch when not wanted.
  DeviceBuffer<float> own_centroids;
  float* centroids = out.centroids;
  int64_t k_stride = out.k_stride;
  if (centroids == nullptr) {
    own_centroids.resize(static_cast<size_t>(rows_) * static_cast<size_t>(k_max_));
    centroids = own_centroids.data();
    k_stride = k_max_;
  }
  SolveArgs a{};
  a.keys = keys_.data();
  a.p0 = p_.data();
  a.p1 = p_.data() + stride;
  a.p2 = p_.data() + 2 * stride;
  a.shift = shift_.data();
  a.n = n;
  a.k = k;
  a.k_row = k_row;
  a.exact = mode_ == KMeansMode::kExact;
  a.dp_values = dp_values_.data();
  a.dp_opt = dp_opt_.data();
  a.dp_points = dp_points_;
  a.k_max = k_max_;
  a.bounds = bounds_.data();
  a.segments = segments_.data();
  a.centroids = centroids;
  a.k_stride = k_stride;
  solve_rows<<<static_cast<unsigned>(rows_), kThreads, 0, stream>>>(a);
  SKIM_CUDA_CHECK_LAUNCH();
  label_rows<<<static_cast<unsigned>(rows_), kThreads, 0, stream>>>(
      keys_.data(), order_.data(), g_, g_stride_, uniform_.data(), n, bounds_.data(), k_max_,
      segments_.data(), centroids, k_stride, out.labels, out.objective);
  SKIM_CUDA_CHECK_LAUNCH();
  if (own_centroids.size() > 0) SKIM_CUDA_CHECK(cudaStreamSynchronize(stream));
}

namespace {

constexpr int64_t kScratchBudget = int64_t{2} << 30;

void kmeans_impl(const float* w, RowWeights f, const float* alpha, int64_t rows, int64_t cols,
                 const std::vector<int>& ks, const int* k_row, int k_max, KMeansMode mode,
                 const std::vector<KMeansLevelOut>& outs, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  const int64_t chunk =
      std::min(rows, RowKMeans::rows_per_chunk(cols, k_max, mode, kScratchBudget));
  RowKMeans engine(chunk, cols, k_max, mode, stream);
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t nr = std::min(chunk, rows - r0);
    RowWeights fc{f.values + r0 * f.row_stride, f.row_stride};
    engine.prepare(w + r0 * cols, fc, alpha, nr, stream);
    for (size_t l = 0; l < outs.size(); ++l) {
      KMeansLevelOut o = outs[l];
      if (o.centroids) o.centroids += r0 * o.k_stride;
      if (o.labels) o.labels += r0 * cols;
      if (o.objective) o.objective += r0;
      engine.solve(ks[l], k_row != nullptr ? k_row + r0 : nullptr, o, stream);
    }
  }
  // The engine's scratch is freed on return: finish the work that reads it first.
  SKIM_CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace

void kmeans_rows(const float* w, RowWeights f, const float* alpha, int64_t rows, int64_t cols,
                 const int* host_ks, int levels, KMeansMode mode, const KMeansLevelOut* host_out,
                 void* stream) {
  if (levels < 1) throw_invalid_argument("kmeans_rows", "no cluster count");
  std::vector<int> ks(host_ks, host_ks + levels);
  std::vector<KMeansLevelOut> outs(host_out, host_out + levels);
  int k_max = 1;
  for (size_t l = 0; l < ks.size(); ++l) {
    if (ks[l] < 1 || ks[l] > kMaxK) throw_invalid_argument("kmeans_rows", "k outside [1, 256]");
    if (outs[l].centroids != nullptr && outs[l].k_stride < ks[l])
      throw_invalid_argument("kmeans_rows", "k_stride below k");
    k_max = std::max(k_max, ks[l]);
  }
  kmeans_impl(w, f, alpha, rows, cols, ks, nullptr, k_max, mode, outs, as_stream(stream));
}

void kmeans_rows_varying_k(const float* w, RowWeights f, const float* alpha, int64_t rows,
                           int64_t cols, const int* k, int k_max, KMeansMode mode,
                           KMeansLevelOut out, void* stream) {
  if (k_max < 1 || k_max > kMaxK) throw_invalid_argument("kmeans_rows", "k_max outside [1, 256]");
  if (out.centroids != nullptr && out.k_stride < k_max)
    throw_invalid_argument("kmeans_rows", "k_stride below k_max");
  kmeans_impl(w, f, alpha, rows, cols, {k_max}, k, k_max, mode, {out}, as_stream(stream));
}

}  // namespace skim::kernels::gpu
