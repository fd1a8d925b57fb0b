// Error tables on the GPU: per chunk of rows, K-means at every level (one sort per row), the
// LUTs rounded as stored (lut_storage.cu), then for each level dW = fp16(LUT)[labels] - W and e =
// rowsum((dW H) .* dW): one SGEMM and one row reduction in double, as the CPU twin's
// row_quadratic_forms.
#include <cuda_fp16.h>
#include <cub/block/block_reduce.cuh>

#include <algorithm>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/error_table.cuh"
#include "kernels/cuda/kmeans1d.cuh"
#include "kernels/cuda/library_handles.cuh"
#include "kernels/gpu/quant_kernels.h"

namespace skim::kernels::gpu {
namespace {

constexpr int kThreads = 256;

__global__ void dequantize_delta_kernel(const float* w, const float* centroids, int64_t k_stride,
                                        const uint8_t* labels, const float* alpha, int64_t rows,
                                        int64_t cols, float* dw) {
  const int64_t total = rows * cols;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < total;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = t / cols, j = t % cols;
    const float c = __half2float(__float2half_rn(centroids[i * k_stride + labels[t]]));
    const float v = alpha != nullptr ? c / alpha[j] : c;
    dw[t] = v - w[t];
  }
}

// out[i * out_stride] = sum_j g_ij d_ij in double, one block per row.
__global__ void __launch_bounds__(kThreads)
    row_dot(const float* g, const float* d, int64_t cols, double* out, int64_t out_stride) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const int64_t row = blockIdx.x;
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < cols; j += kThreads)
    s += static_cast<double>(g[row * cols + j]) * static_cast<double>(d[row * cols + j]);
  const double total = Reduce(tmp).Sum(s);
  if (threadIdx.x == 0) out[row * out_stride] = total;
}

int grid_for(int64_t n) {
  return static_cast<int>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, 65535 * 8));
}

}  // namespace

// G = D H for row-major D [rows, cols] and H [cols, cols]: column-major G^T = H^T D^T.
void gemm_rows_by_h(const float* d, int64_t rows, int64_t cols, const float* h, float* g,
                    cudaStream_t stream) {
  const float one = 1.0f, zero = 0.0f;
  const int n = static_cast<int>(cols);
  SKIM_CUBLAS_CHECK(cublasSgemm(cublas_handle(stream), CUBLAS_OP_N, CUBLAS_OP_N, n,
                                static_cast<int>(rows), n, &one, h, n, d, n, &zero, g, n));
}

void quadratic_forms_strided(const float* d, int64_t rows, int64_t cols, const float* h, float* g,
                             double* out, int64_t out_stride, cudaStream_t stream) {
  if (rows <= 0) return;
  gemm_rows_by_h(d, rows, cols, h, g, stream);
  row_dot<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(g, d, cols, out, out_stride);
  SKIM_CUDA_CHECK_LAUNCH();
}

void dequantize_delta(const float* w, const float* centroids, int64_t k_stride,
                      const uint8_t* labels, const float* alpha, int64_t rows, int64_t cols,
                      float* dw, void* stream) {
  dequantize_delta_kernel<<<grid_for(rows * cols), kThreads, 0, as_stream(stream)>>>(
      w, centroids, k_stride, labels, alpha, rows, cols, dw);
  SKIM_CUDA_CHECK_LAUNCH();
}

void row_quadratic_forms(const float* d, int64_t rows, int64_t cols, const float* h, float* g,
                         double* out, void* stream) {
  quadratic_forms_strided(d, rows, cols, h, g, out, 1, as_stream(stream));
}

void error_table(const float* w, const float* h, RowWeights f, int64_t rows, int64_t cols,
                 int b_min, int b_max, KMeansMode mode, LutStorage storage, double* e,
                 void* stream) {
  if (b_min < 1 || b_max > 8 || b_min > b_max)
    throw_invalid_argument("error_table", "bit range outside [1, 8]");
  if (rows <= 0 || cols <= 0) return;
  const cudaStream_t s = as_stream(stream);
  const int levels = b_max - b_min + 1;
  const int k_max = 1 << b_max;
  constexpr int64_t kBudget = int64_t{1} << 30;
  int64_t chunk = RowKMeans::rows_per_chunk(cols, k_max, mode, kBudget);
  chunk = std::min({chunk, rows, kBudget / (cols * 9)});  // dW, G and labels of a chunk
  chunk = std::max<int64_t>(chunk, 1);
  RowKMeans engine(chunk, cols, k_max, mode, s);
  const auto cn = static_cast<size_t>(chunk), n = static_cast<size_t>(cols);
  DeviceBuffer<float> centroids(cn * static_cast<size_t>(k_max)), dw(cn * n), g(cn * n);
  DeviceBuffer<uint8_t> labels(cn * n);
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t nr = std::min(chunk, rows - r0);
    engine.prepare(w + r0 * cols, RowWeights{f.values + r0 * f.row_stride, f.row_stride}, nullptr,
                   nr, s);
    for (int l = 0; l < levels; ++l) {
      const int k = 1 << (b_min + l);
      engine.solve(k, nullptr, KMeansLevelOut{centroids.data(), k_max, labels.data(), nullptr}, s);
      if (storage != LutStorage::kF16)
        store_lut_entries(centroids.data(), k_max, k, nr, storage, s);
      dequantize_delta(w + r0 * cols, centroids.data(), k_max, labels.data(), nullptr, nr, cols,
                       dw.data(), s);
      quadratic_forms_strided(dw.data(), nr, cols, h, g.data(), e + r0 * levels + l, levels, s);
    }
  }
  SKIM_CUDA_CHECK(cudaStreamSynchronize(s));  // scratch is freed on return
}

}  // namespace skim::kernels::gpu
