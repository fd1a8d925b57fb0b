// The LUT refinement's normal equations on the GPU: P of a block of rows scattered from the
// labels, Y = P H by one SGEMM, then one warp per line of Y summing it by label (a) and against
// the row's weights (rhs) in column order in double, the twin's order, so only Y's rounding
// differs from the CPU (quant::cpu_refine_systems).
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/error_table.cuh"
#include "kernels/gpu/quant_kernels.h"

namespace skim::kernels::gpu {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// p [lines, cols] zeroed before: line line_off[r] + l_rj of column j gets 1 / alpha_j.
__global__ void scatter_lines(const uint8_t* labels, const float* inva, const int64_t* line_off,
                              int64_t cols, float* p) {
  const int64_t r = blockIdx.y;
  const int64_t j = blockIdx.x * int64_t{kThreads} + threadIdx.x;
  if (j < cols) p[(line_off[r] + labels[r * cols + j]) * cols + j] = inva[j];
}

// Block r, warp q (and q + kWarps ...): line q of row r. Bin z of a belongs to lane z % 32, which
// alone adds to it, so every sum runs over the columns in order; the lanes see each column by
// shuffles from the lane that loaded it (coalesced loads of 32 columns).
__global__ void __launch_bounds__(kThreads)
    sum_lines(const float* y, const uint8_t* labels, const float* w, const float* inva,
              const int* k, int k_max, const int64_t* line_off, const int64_t* a_off,
              const int64_t* rhs_off, int64_t cols, double* a, double* rhs) {
  extern __shared__ double bins_all[];
  const int64_t r = blockIdx.x;
  const int kr = k[r], warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  double* bins = bins_all + warp * k_max;
  const uint8_t* lr = labels + r * cols;
  const float* wr = w + r * cols;
  constexpr unsigned kAll = 0xffffffffu;
  for (int q = warp; q < kr; q += kWarps) {
    const float* yq = y + (line_off[r] + q) * cols;
    for (int z = lane; z < kr; z += 32) bins[z] = 0.0;
    __syncwarp();
    double s = 0.0;
    for (int64_t j0 = 0; j0 < cols; j0 += 32) {
      const int64_t j = j0 + lane;
      int l = 0;
      float yv = 0.0f, iv = 0.0f, wv = 0.0f;
      if (j < cols) {
        l = lr[j];
        yv = yq[j];
        iv = inva[j];
        wv = wr[j];
      }
      const int n = static_cast<int>(cols - j0 < 32 ? cols - j0 : 32);
      for (int t = 0; t < n; ++t) {
        const int lt = __shfl_sync(kAll, l, t);
        const double vt = static_cast<double>(__shfl_sync(kAll, yv, t));
        const double it = static_cast<double>(__shfl_sync(kAll, iv, t));
        const double wt = static_cast<double>(__shfl_sync(kAll, wv, t));
        if ((lt & 31) == lane) bins[lt] = __dadd_rn(bins[lt], __dmul_rn(vt, it));
        s = __dadd_rn(s, __dmul_rn(vt, wt));
      }
    }
    __syncwarp();
    for (int z = lane; z < kr; z += 32) a[a_off[r] + q * kr + z] = bins[z];
    if (lane == 0) rhs[rhs_off[r] + q] = s;
    __syncwarp();
  }
}

}  // namespace

void refine_systems(const RefineInputs& in, const RefineLayout& layout, float* p, float* y,
                    double* a, double* rhs, void* stream) {
  if (layout.rows <= 0) return;
  if (in.k_max < 1 || in.k_max > 256)
    throw_invalid_argument("refine_systems", "the largest LUT size is outside 1..256");
  cudaStream_t s = as_stream(stream);
  const int64_t cols = in.cols;
  SKIM_CUDA_CHECK(
      cudaMemsetAsync(p, 0, static_cast<size_t>(layout.lines * cols) * sizeof(float), s));
  const dim3 scatter_grid(static_cast<unsigned>((cols + kThreads - 1) / kThreads),
                          static_cast<unsigned>(layout.rows));
  scatter_lines<<<scatter_grid, kThreads, 0, s>>>(in.labels, in.inva, layout.line_off, cols, p);
  SKIM_CUDA_CHECK_LAUNCH();
  gemm_rows_by_h(p, layout.lines, cols, in.h, y, s);
  const size_t shared = sizeof(double) * kWarps * static_cast<size_t>(in.k_max);
  sum_lines<<<static_cast<unsigned>(layout.rows), kThreads, shared, s>>>(
      y, in.labels, in.w, in.inva, in.k, in.k_max, layout.line_off, layout.a_off, layout.rhs_off,
      cols, a, rhs);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu
