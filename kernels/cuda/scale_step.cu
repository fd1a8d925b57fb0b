// The scale-training step of SKIM Algorithm 2 on the GPU, term by term as the CPU twin
// quant::scale_loss_and_grad: per row the g-weighted centroids (shared-memory sums per
// cluster), D = W^ - W, G = D H (SGEMM), the row losses and the segment sums of 2 G / alpha per
// (row, cluster), then the gradient per column as partial sums over row tiles reduced in a
// fixed order. Adam runs as one kernel over the columns.
#include <cuda_fp16.h>
#include <cub/block/block_reduce.cuh>

#include <algorithm>
#include <cmath>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/error_table.cuh"
#include "kernels/gpu/quant_kernels.h"

namespace skim::kernels::gpu {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxK = 256;
constexpr int64_t kRowTile = 64;  // rows per partial gradient sum

__global__ void exp_alpha(const double* log_alpha, int64_t cols, double* a) {
  for (int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; j < cols;
       j += int64_t{gridDim.x} * blockDim.x)
    a[j] = exp(log_alpha[j]);
}

// Per row: centroid c and weight sum den per cluster, W^ and D = W^ - W.
__global__ void __launch_bounds__(kThreads)
    centroids_and_delta(const float* w, const float* f, int64_t f_stride, const uint8_t* labels,
                        const int* k, const double* a, int64_t cols, int k_max, double* c_out,
                        double* den_out, float* w_hat, float* d) {
  __shared__ double num[kMaxK], den[kMaxK];
  const int64_t row = blockIdx.x;
  const int kr = k[row];
  for (int t = threadIdx.x; t < kr; t += kThreads) num[t] = den[t] = 0.0;
  __syncthreads();
  const float* wr = w + row * cols;
  const float* fr = f + row * f_stride;
  const uint8_t* lr = labels + row * cols;
  for (int64_t j = threadIdx.x; j < cols; j += kThreads) {
    const double fj = fr[j];
    atomicAdd(&num[lr[j]], fj * static_cast<double>(wr[j]) / a[j]);
    atomicAdd(&den[lr[j]], fj / (a[j] * a[j]));
  }
  __syncthreads();
  for (int t = threadIdx.x; t < kr; t += kThreads) {
    num[t] = den[t] > 0.0 ? num[t] / den[t] : 0.0;
    c_out[row * k_max + t] = num[t];
    den_out[row * k_max + t] = den[t];
  }
  __syncthreads();
  for (int64_t j = threadIdx.x; j < cols; j += kThreads) {
    const double v = num[lr[j]] / a[j];
    w_hat[row * cols + j] = static_cast<float>(v);
    d[row * cols + j] = static_cast<float>(v - static_cast<double>(wr[j]));
  }
}

// Per row: loss = sum G D and seg[l] = sum_{j in l} 2 G_ij / alpha_j.
__global__ void __launch_bounds__(kThreads)
    row_loss_and_segments(const float* g, const float* d, const uint8_t* labels, const int* k,
                          const double* a, int64_t cols, int k_max, double* row_loss,
                          double* seg_out) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  __shared__ double seg[kMaxK];
  const int64_t row = blockIdx.x;
  const int kr = k[row];
  for (int t = threadIdx.x; t < kr; t += kThreads) seg[t] = 0.0;
  __syncthreads();
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < cols; j += kThreads) {
    const double gj = g[row * cols + j];
    s += gj * static_cast<double>(d[row * cols + j]);
    atomicAdd(&seg[labels[row * cols + j]], 2.0 * gj / a[j]);
  }
  const double total = Reduce(tmp).Sum(s);
  if (threadIdx.x == 0) row_loss[row] = total;
  __syncthreads();
  for (int t = threadIdx.x; t < kr; t += kThreads) seg_out[row * k_max + t] = seg[t];
}

// partial[tile][j]: the gradient terms of the rows of one tile for column j.
__global__ void column_partials(const float* w, const float* f, int64_t f_stride,
                                const uint8_t* labels, const double* a, const float* g,
                                const float* w_hat, const double* c, const double* den,
                                const double* seg, int64_t rows, int64_t cols, int k_max,
                                double* partial) {
  const int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (j >= cols) return;
  const int64_t r0 = blockIdx.y * kRowTile;
  const int64_t r1 = min(rows, r0 + kRowTile);
  const double aj = a[j];
  double s = 0.0;
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t t = i * cols + j;
    const int l = labels[t];
    const double fij = f[i * f_stride + j];
    const double gij = 2.0 * static_cast<double>(g[t]);
    s -= gij * static_cast<double>(w_hat[t]);
    const double dd = den[i * k_max + l];
    if (dd > 0.0) {
      const double dc =
          (2.0 * c[i * k_max + l] * fij / (aj * aj) - fij * static_cast<double>(w[t]) / aj) / dd;
      s += seg[i * k_max + l] * dc;
    }
  }
  partial[blockIdx.y * cols + j] = s;
}

// grad[j] += sum over tiles (in tile order); loss += sum of the row losses (one block).
__global__ void sum_partials(const double* partial, int64_t tiles, int64_t cols, double* grad) {
  const int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (j >= cols) return;
  double s = 0.0;
  for (int64_t t = 0; t < tiles; ++t) s += partial[t * cols + j];
  grad[j] += s;
}

__global__ void __launch_bounds__(kThreads)
    sum_rows(const double* row_loss, int64_t rows, double* loss) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < rows; i += kThreads) s += row_loss[i];
  const double total = Reduce(tmp).Sum(s);
  if (threadIdx.x == 0) *loss += total;
}

__global__ void adam_kernel(double* theta, double* m, double* v, const double* grad, int64_t cols,
                            double lr, double c1, double c2) {
  constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;
  const int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (j >= cols) return;
  const double gj = grad[j];
  m[j] = kBeta1 * m[j] + (1 - kBeta1) * gj;
  v[j] = kBeta2 * v[j] + (1 - kBeta2) * gj * gj;
  theta[j] -= lr * (m[j] / c1) / (sqrt(v[j] / c2) + kEps);
}

__global__ void alpha_from_theta(const double* theta, int64_t cols, float* alpha) {
  const int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (j < cols) alpha[j] = __half2float(__float2half_rn(static_cast<float>(exp(theta[j]))));
}

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>((n + kThreads - 1) / kThreads);
}

}  // namespace

void scale_loss_and_grad(const float* w, const float* h, RowWeights f, const uint8_t* labels,
                         const int* k, int k_max, int64_t rows, int64_t cols,
                         const double* log_alpha, double* loss, double* grad, void* stream) {
  if (k_max < 1 || k_max > kMaxK) throw_invalid_argument("scale_step", "k_max outside [1, 256]");
  if (rows <= 0 || cols <= 0) throw_invalid_argument("scale_step", "empty matrix");
  const cudaStream_t s = as_stream(stream);
  constexpr int64_t kBudget = int64_t{1} << 30;
  const int64_t chunk = std::clamp<int64_t>(kBudget / (cols * 12), 1, rows);
  const auto cn = static_cast<size_t>(chunk), n = static_cast<size_t>(cols);
  const int64_t max_tiles = (chunk + kRowTile - 1) / kRowTile;
  DeviceBuffer<double> a(n), c(cn * k_max), den(cn * k_max), seg(cn * k_max), row_loss(cn),
      partial(static_cast<size_t>(max_tiles) * n);
  DeviceBuffer<float> w_hat(cn * n), d(cn * n), g(cn * n);
  exp_alpha<<<blocks_for(cols), kThreads, 0, s>>>(log_alpha, cols, a.data());
  SKIM_CUDA_CHECK_LAUNCH();
  SKIM_CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(double), s));
  if (grad != nullptr) SKIM_CUDA_CHECK(cudaMemsetAsync(grad, 0, n * sizeof(double), s));
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t nr = std::min(chunk, rows - r0);
    const float* wc = w + r0 * cols;
    const float* fc = f.values + r0 * f.row_stride;
    const uint8_t* lc = labels + r0 * cols;
    const int* kc = k + r0;
    const auto grid_rows = static_cast<unsigned>(nr);
    centroids_and_delta<<<grid_rows, kThreads, 0, s>>>(wc, fc, f.row_stride, lc, kc, a.data(), cols,
                                                       k_max, c.data(), den.data(), w_hat.data(),
                                                       d.data());
    SKIM_CUDA_CHECK_LAUNCH();
    gemm_rows_by_h(d.data(), nr, cols, h, g.data(), s);
    row_loss_and_segments<<<grid_rows, kThreads, 0, s>>>(g.data(), d.data(), lc, kc, a.data(), cols,
                                                         k_max, row_loss.data(), seg.data());
    SKIM_CUDA_CHECK_LAUNCH();
    sum_rows<<<1, kThreads, 0, s>>>(row_loss.data(), nr, loss);
    SKIM_CUDA_CHECK_LAUNCH();
    if (grad == nullptr) continue;
    const int64_t tiles = (nr + kRowTile - 1) / kRowTile;
    column_partials<<<dim3(blocks_for(cols), static_cast<unsigned>(tiles)), kThreads, 0, s>>>(
        wc, fc, f.row_stride, lc, a.data(), g.data(), w_hat.data(), c.data(), den.data(),
        seg.data(), nr, cols, k_max, partial.data());
    SKIM_CUDA_CHECK_LAUNCH();
    sum_partials<<<blocks_for(cols), kThreads, 0, s>>>(partial.data(), tiles, cols, grad);
    SKIM_CUDA_CHECK_LAUNCH();
  }
  SKIM_CUDA_CHECK(cudaStreamSynchronize(s));  // scratch is freed on return
}

void adam_step(double* theta, double* m, double* v, const double* grad, int64_t cols, int step,
               double lr, void* stream) {
  const double c1 = 1.0 - std::pow(0.9, step + 1), c2 = 1.0 - std::pow(0.999, step + 1);
  adam_kernel<<<blocks_for(cols), kThreads, 0, as_stream(stream)>>>(theta, m, v, grad, cols, lr, c1,
                                                                    c2);
  SKIM_CUDA_CHECK_LAUNCH();
}

ScaleTrainResult train_scales(const float* w, const float* h, RowWeights f, const uint8_t* labels,
                              const int* k, int k_max, int64_t rows, int64_t cols, int steps,
                              double lr, int decay_every, double decay, float* alpha,
                              void* stream) {
  const cudaStream_t s = as_stream(stream);
  const auto n = static_cast<size_t>(cols);
  DeviceBuffer<double> theta(n), m(n), v(n), grad(n), loss(1);
  theta.zero(s);
  m.zero(s);
  v.zero(s);
  ScaleTrainResult out;
  for (int step = 0; step < steps; ++step) {
    scale_loss_and_grad(w, h, f, labels, k, k_max, rows, cols, theta.data(), loss.data(),
                        grad.data(), stream);
    if (step == 0) loss.download(&out.loss_first, 1, s);
    const double lr_step = lr * std::pow(decay, step / std::max(1, decay_every));
    adam_step(theta.data(), m.data(), v.data(), grad.data(), cols, step, lr_step, stream);
  }
  scale_loss_and_grad(w, h, f, labels, k, k_max, rows, cols, theta.data(), loss.data(), nullptr,
                      stream);
  loss.download(&out.loss_last, 1, s);
  if (steps == 0) out.loss_first = out.loss_last;
  alpha_from_theta<<<blocks_for(cols), kThreads, 0, s>>>(theta.data(), cols, alpha);
  SKIM_CUDA_CHECK_LAUNCH();
  SKIM_CUDA_CHECK(cudaStreamSynchronize(s));
  return out;
}

}  // namespace skim::kernels::gpu
