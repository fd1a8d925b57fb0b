// GPTQ on the GPU, following the CPU twin quant::gptq_quantize (without act-order): dead
// columns get H_jj = 1 and a zero weight column, H += damp * mean(diag H) * I, then in fp64 with
// cuSOLVER: Cholesky, inverse (potri), Cholesky of the inverse; U (upper, row-major) is that
// last factor. Blocks of columns: one kernel quantizes a block column by column (a tile of
// rows per thread block, the block's weights and U's diagonal block in shared memory) and
// stores the scaled errors; one SGEMM applies them lazily to the columns beyond the block.
#include <cuda_fp16.h>
#include <cub/block/block_reduce.cuh>

#include <algorithm>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/library_handles.cuh"
#include "kernels/cuda/uniform_grid.cuh"
#include "kernels/gpu/quant_kernels.h"

namespace skim::kernels::gpu {
namespace {

constexpr int kThreads = 256;
constexpr int kTileRows = 64;  // rows per thread block of the in-block kernel
constexpr int64_t kMaxBlock = 256;

// Dead columns: H_jj = 0 -> 1 and a flag.
__global__ void mark_dead(double* h, int64_t n, int* dead) {
  const int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (j >= n) return;
  const bool d = h[j * n + j] == 0.0;
  if (d) h[j * n + j] = 1.0;
  dead[j] = d ? 1 : 0;
}

__global__ void __launch_bounds__(kThreads) damp_diagonal(double* h, int64_t n, double damp) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  __shared__ double add;
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < n; j += kThreads) s += h[j * n + j];
  const double total = Reduce(tmp).Sum(s);
  if (threadIdx.x == 0) add = damp * total / static_cast<double>(n);
  __syncthreads();
  for (int64_t j = threadIdx.x; j < n; j += kThreads) h[j * n + j] += add;
}

// Per row: parameters from the original row, then the working copy with dead columns zeroed.
__global__ void __launch_bounds__(kThreads)
    row_params_and_copy(const float* w, const int* dead, int64_t n, int bits, bool per_row,
                        float* wp, float* scale_f, float* zero_f, uint16_t* scale_h,
                        uint16_t* zero_h) {
  using Reduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const int64_t row = blockIdx.x;
  const float* wr = w + row * n;
  float lo = wr[0], hi = wr[0];
  for (int64_t j = threadIdx.x; j < n; j += kThreads) {
    lo = fminf(lo, wr[j]);
    hi = fmaxf(hi, wr[j]);
    wp[row * n + j] = dead[j] ? 0.0f : wr[j];
  }
  if (!per_row) return;
  const float mn = Reduce(tmp).Reduce(lo, MinOp());
  __syncthreads();
  const float mx = Reduce(tmp).Reduce(hi, MaxOp());
  if (threadIdx.x == 0) {
    const UniformGrid p = uniform_params_device(mn, mx, bits);
    scale_f[row] = p.scale;
    zero_f[row] = p.zero;
    scale_h[row] = p.scale_h;
    zero_h[row] = p.zero_h;
  }
}

// Column-major lower factor L of H^-1 (L L^T = H^-1) read row-major is U = L^T: keep j >= i.
__global__ void upper_to_float(const double* l, int64_t n, float* u) {
  const int64_t total = n * n;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < total;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = t / n, j = t % n;
    u[t] = j >= i ? static_cast<float>(l[t]) : 0.0f;
  }
}

// Quantizes columns [i1, i1 + bs) of every row, column by column; err [rows, bs].
__global__ void quantize_block(float* wp, const float* u, int64_t rows, int64_t n, int64_t i1,
                               int bs, int bits, int64_t group_size, int64_t groups,
                               const float* scale_f, const float* zero_f, uint8_t* codes,
                               uint16_t* scale_h, uint16_t* zero_h, float* err) {
  extern __shared__ float shared[];
  float* ub = shared;              // [bs][bs] block of U
  float* tile = shared + bs * bs;  // [bs][kTileRows]
  const int64_t r0 = blockIdx.x * int64_t{kTileRows};
  const int tr = static_cast<int>(rows - r0 < kTileRows ? rows - r0 : kTileRows);
  for (int t = threadIdx.x; t < bs * bs; t += blockDim.x)
    ub[t] = u[(i1 + t / bs) * n + i1 + t % bs];
  for (int t = threadIdx.x; t < tr * bs; t += blockDim.x) {
    const int r = t / bs, c = t % bs;
    tile[c * kTileRows + r] = wp[(r0 + r) * n + i1 + c];
  }
  __syncthreads();
  const int r = threadIdx.x;
  if (r < tr) {
    const int64_t row = r0 + r;
    UniformGrid p{};
    if (group_size == 0) {
      p.scale = scale_f[row];
      p.zero = zero_f[row];
    }
    for (int j = 0; j < bs; ++j) {
      const int64_t col = i1 + j;
      if (group_size > 0 && col % group_size == 0) {
        const int end = static_cast<int>(j + group_size < bs ? j + group_size : bs);
        float lo = tile[j * kTileRows + r], hi = lo;
        for (int t = j + 1; t < end; ++t) {
          lo = fminf(lo, tile[t * kTileRows + r]);
          hi = fmaxf(hi, tile[t * kTileRows + r]);
        }
        p = uniform_params_device(lo, hi, bits);
        scale_h[row * groups + col / group_size] = p.scale_h;
        zero_h[row * groups + col / group_size] = p.zero_h;
      }
      const float x = tile[j * kTileRows + r];
      const uint8_t q = code_of(x, p, bits);
      codes[row * n + col] = q;
      const float e = (x - value_of(q, p)) / ub[j * bs + j];
      err[row * bs + j] = e;
      for (int t = j + 1; t < bs; ++t) tile[t * kTileRows + r] -= e * ub[j * bs + t];
    }
  }
}

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, 65535 * 8));
}

void check_info(const DeviceBuffer<int>& info, cudaStream_t s, const char* what) {
  int value = 0;
  info.download(&value, 1, s);
  if (value != 0) throw_numeric_failure("gptq", what, value);
}

}  // namespace

void gptq_quantize(const float* w, const double* h, int64_t rows, int64_t cols,
                   const GptqDeviceOptions& options, uint8_t* codes, uint16_t* scale,
                   uint16_t* zero, void* stream) {
  if (rows <= 0 || cols <= 0) throw_invalid_argument("gptq", "empty matrix");
  if (options.bits < 2 || options.bits > 8) throw_invalid_argument("gptq", "bits outside 2..8");
  const int64_t gs = options.group_size >= cols ? 0 : options.group_size;
  const int64_t block = options.block_size;
  if (block <= 0 || block > kMaxBlock || gs < 0 || (gs > 0 && block % gs != 0))
    throw_invalid_argument("gptq", "block size must be in 1..256 and a multiple of the group");
  if (!(options.damp >= 0.0)) throw_invalid_argument("gptq", "negative damping");
  const cudaStream_t s = as_stream(stream);
  const int64_t n = cols;
  const int64_t groups = gs == 0 ? 1 : (n + gs - 1) / gs;
  const auto nn = static_cast<size_t>(n * n);

  DeviceBuffer<double> hd(nn);
  SKIM_CUDA_CHECK(cudaMemcpyAsync(hd.data(), h, nn * sizeof(double), cudaMemcpyDeviceToDevice, s));
  DeviceBuffer<int> dead(static_cast<size_t>(n)), info(1);
  mark_dead<<<blocks_for(n), kThreads, 0, s>>>(hd.data(), n, dead.data());
  SKIM_CUDA_CHECK_LAUNCH();
  DeviceBuffer<float> wp(static_cast<size_t>(rows * n)), scale_f(static_cast<size_t>(rows)),
      zero_f(static_cast<size_t>(rows));
  row_params_and_copy<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(
      w, dead.data(), n, options.bits, gs == 0, wp.data(), scale_f.data(), zero_f.data(), scale,
      zero);
  SKIM_CUDA_CHECK_LAUNCH();
  damp_diagonal<<<1, kThreads, 0, s>>>(hd.data(), n, options.damp);
  SKIM_CUDA_CHECK_LAUNCH();

  // Symmetric matrices: the row-major buffer is its own column-major transpose.
  cusolverDnHandle_t solver = cusolver_handle(s);
  const int ni = static_cast<int>(n);
  int lwork_f = 0, lwork_i = 0;
  SKIM_CUSOLVER_CHECK(
      cusolverDnDpotrf_bufferSize(solver, CUBLAS_FILL_MODE_LOWER, ni, hd.data(), ni, &lwork_f));
  SKIM_CUSOLVER_CHECK(
      cusolverDnDpotri_bufferSize(solver, CUBLAS_FILL_MODE_LOWER, ni, hd.data(), ni, &lwork_i));
  DeviceBuffer<double> work(static_cast<size_t>(std::max(lwork_f, lwork_i)));
  SKIM_CUSOLVER_CHECK(cusolverDnDpotrf(solver, CUBLAS_FILL_MODE_LOWER, ni, hd.data(), ni,
                                       work.data(), lwork_f, info.data()));
  check_info(info, s, "damped Hessian is not positive definite (potrf)");
  SKIM_CUSOLVER_CHECK(cusolverDnDpotri(solver, CUBLAS_FILL_MODE_LOWER, ni, hd.data(), ni,
                                       work.data(), lwork_i, info.data()));
  check_info(info, s, "Hessian inverse failed (potri)");
  // potri leaves H^-1 in the lower triangle, which is all the next potrf reads.
  SKIM_CUSOLVER_CHECK(cusolverDnDpotrf(solver, CUBLAS_FILL_MODE_LOWER, ni, hd.data(), ni,
                                       work.data(), lwork_f, info.data()));
  check_info(info, s, "H^-1 is not positive definite (potrf)");
  work.resize(0);
  DeviceBuffer<float> u(nn);
  upper_to_float<<<blocks_for(n * n), kThreads, 0, s>>>(hd.data(), n, u.data());
  SKIM_CUDA_CHECK_LAUNCH();
  hd.resize(0);

  DeviceBuffer<float> err(static_cast<size_t>(rows * block));
  const unsigned tiles = static_cast<unsigned>((rows + kTileRows - 1) / kTileRows);
  cublasHandle_t blas = cublas_handle(s);
  for (int64_t i1 = 0; i1 < n; i1 += block) {
    const int64_t i2 = std::min(n, i1 + block);
    const int bs = static_cast<int>(i2 - i1);
    const size_t smem = static_cast<size_t>(bs * bs + bs * kTileRows) * sizeof(float);
    SKIM_CUDA_CHECK(cudaFuncSetAttribute(
        quantize_block, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    quantize_block<<<tiles, kTileRows, smem, s>>>(wp.data(), u.data(), rows, n, i1, bs,
                                                  options.bits, gs, groups, scale_f.data(),
                                                  zero_f.data(), codes, scale, zero, err.data());
    SKIM_CUDA_CHECK_LAUNCH();
    if (i2 < n) {
      // wp[:, i2:] -= err [rows, bs] * U[i1:i2, i2:]; column-major: C^T -= Ub^T err^T.
      const float minus_one = -1.0f, one = 1.0f;
      SKIM_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(n - i2),
                                    static_cast<int>(rows), bs, &minus_one, u.data() + i1 * n + i2,
                                    ni, err.data(), bs, &one, wp.data() + i2, ni));
    }
  }
  SKIM_CUDA_CHECK(cudaStreamSynchronize(s));  // scratch is freed on return
}

}  // namespace skim::kernels::gpu
