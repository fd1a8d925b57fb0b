#pragma once
// The LUT product kernel shared by the GEMV (T = 1 token) and the prefill GEMM (T tokens per
// block), over the device layout of kernels/gpu/lut_device_layout.h (docs/GPU.md):
//
// - a block is kWarps warps; each warp owns R consecutive rows of one bit-width group and one
//   slice of the row's 128-byte segments (split-K when there are too few row blocks to fill the
//   device, partial sums then added with atomicAdd into a zeroed y);
// - the block stages x / alpha for its slice and its T tokens in shared memory once (fp32), and
//   each warp its R LUTs of rows up to 4 bits (fp32, 16 entries apart: one bank each,
//   conflict-free lookups); rows of 5..8 bits look their fp16 LUTs up through L1 (__ldg);
// - lane l loads word l of each segment (coalesced 128-byte loads, U segments x R rows in
//   flight), decodes slot s with a shift and a mask, looks the label up in the row's LUT and
//   multiplies the input of column seg*32P + s*32 + l, which the 32 lanes read from 32
//   consecutive shared-memory words; each input read serves R rows, each decoded weight T tokens;
// - fp32 accumulation, a warp shuffle reduction per (row, token) at the end.
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/gpu/lut_products.h"

namespace skim::kernels::gpu::lut {

inline constexpr int kWarps = 8;
inline constexpr int kLutStride = 16;  // floats per staged LUT (2^kLutStagedMaxBits)
static_assert(kLutStride == 1 << kLutStagedMaxBits);
inline constexpr int64_t kSliceFloats = 8192;  // shared-memory budget for staged inputs (32 KiB)

struct GroupArgs {
  const uint32_t* words = nullptr;
  const __half* lut = nullptr;
  const int32_t* row_index = nullptr;
  int bits = 0;
  int rows_padded = 0;
  int words_per_row = 0;
  int segments = 0;        // words_per_row / 32
  int segs_per_slice = 0;  // segments per split-K slice
  int ksplit = 0;          // slices
  int row_blocks = 0;      // blocks of kWarps * R rows
  int block_begin = 0;     // first flat block index of this group
};

struct Args {
  GroupArgs group[kLutMaxBits];
  int groups = 0;
  const float* x = nullptr;
  const __half* alpha = nullptr;
  int64_t cols = 0;
  int64_t batch = 0;
  int64_t rows = 0;  // row stride of y
  float* y = nullptr;
  bool accumulate = false;  // split-K: atomicAdd into a zeroed y
  int x_stride = 0;         // floats per token in the staged inputs
};

template <int T>
__device__ __forceinline__ uint32_t load_word(const uint32_t* p) {
  // The GEMV streams each word once; the GEMM's token tiles re-read them, so keep them in L2.
  if constexpr (T == 1) {
    return __ldcs(p);
  } else {
    return __ldg(p);
  }
}

template <int BITS, int R, int T, int U>
__device__ __forceinline__ void lut_block(const Args& a, const GroupArgs& g, int local_block,
                                          float* smem) {
  constexpr int P = 32 / BITS;
  constexpr uint32_t kMask = (1u << BITS) - 1u;
  constexpr int kSegCols = 32 * P;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int row_block = local_block / g.ksplit;
  const int slice = local_block % g.ksplit;
  const int seg0 = slice * g.segs_per_slice;
  const int seg1 = min(g.segments, seg0 + g.segs_per_slice);
  const int64_t col0 = int64_t{seg0} * kSegCols;
  const int slice_cols = (seg1 - seg0) * kSegCols;
  const int64_t tok0 = int64_t{blockIdx.y} * T;

  float* xs = smem;                                              // [T][x_stride]
  float* lut_s = smem + T * a.x_stride + warp * R * kLutStride;  // this warp's [R][16]
  for (int i = threadIdx.x; i < T * slice_cols; i += blockDim.x) {
    const int t = i / slice_cols, c = i % slice_cols;
    const int64_t col = col0 + c, tok = tok0 + t;
    float v = 0.0f;
    if (col < a.cols && tok < a.batch) v = a.x[tok * a.cols + col] / __half2float(a.alpha[col]);
    xs[t * a.x_stride + c] = v;
  }
  const int row0 = (row_block * kWarps + warp) * R;
  const bool active = row0 < g.rows_padded;  // padded to kLutRowAlign, a multiple of R
  constexpr bool kStaged = BITS <= kLutStagedMaxBits;
  if (kStaged && active) {
    for (int e = lane; e < R * kLutStride; e += 32) {
      const int r = e / kLutStride, k = e % kLutStride;
      lut_s[e] =
          k <= static_cast<int>(kMask) ? __half2float(g.lut[((row0 + r) << BITS) + k]) : 0.0f;
    }
  }
  __syncthreads();
  if (!active) return;

  const uint32_t* wrow = g.words + int64_t{row0} * g.words_per_row + lane;
  float acc[R][T];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < T; ++t) acc[r][t] = 0.0f;

  for (int seg = seg0; seg < seg1; seg += U) {
    uint32_t w[U][R];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r)
        w[u][r] = seg + u < seg1
                      ? load_word<T>(wrow + int64_t{r} * g.words_per_row + (seg + u) * 32)
                      : 0u;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (seg + u >= seg1) break;  // warp-uniform
      const float* xb = xs + (seg + u - seg0) * kSegCols + lane;
#pragma unroll
      for (int s = 0; s < P; ++s) {
        float xv[T];
#pragma unroll
        for (int t = 0; t < T; ++t) xv[t] = xb[t * a.x_stride + s * 32];
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const uint32_t k = (w[u][r] >> (s * BITS)) & kMask;
          float lv;
          if constexpr (kStaged) {
            lv = lut_s[r * kLutStride + k];
          } else {
            lv = __half2float(__ldg(g.lut + (int64_t{row0 + r} << BITS) + k));
          }
#pragma unroll
          for (int t = 0; t < T; ++t) acc[r][t] = fmaf(lv, xv[t], acc[r][t]);
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int32_t row = g.row_index[row0 + r];
#pragma unroll
    for (int t = 0; t < T; ++t) {
      float v = acc[r][t];
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
      const int64_t tok = tok0 + t;
      if (lane == 0 && row >= 0 && tok < a.batch) {
        float* dst = a.y + tok * a.rows + row;
        if (a.accumulate) {
          atomicAdd(dst, v);
        } else {
          *dst = v;
        }
      }
    }
  }
}

template <int R, int T, int U>
__global__ void __launch_bounds__(kWarps * 32) lut_kernel(const Args a) {
  extern __shared__ float smem[];
  int gi = 0;
  while (gi + 1 < a.groups && static_cast<int>(blockIdx.x) >= a.group[gi + 1].block_begin) ++gi;
  const GroupArgs& g = a.group[gi];
  const int local = static_cast<int>(blockIdx.x) - g.block_begin;
  switch (g.bits) {
    case 1:
      lut_block<1, R, T, U>(a, g, local, smem);
      break;
    case 2:
      lut_block<2, R, T, U>(a, g, local, smem);
      break;
    case 3:
      lut_block<3, R, T, U>(a, g, local, smem);
      break;
    case 4:
      lut_block<4, R, T, U>(a, g, local, smem);
      break;
    case 5:
      lut_block<5, R, T, U>(a, g, local, smem);
      break;
    case 6:
      lut_block<6, R, T, U>(a, g, local, smem);
      break;
    case 7:
      lut_block<7, R, T, U>(a, g, local, smem);
      break;
    default:
      lut_block<8, R, T, U>(a, g, local, smem);
      break;
  }
}

inline int multiprocessors() {
  int device = 0, sms = 0;
  SKIM_CUDA_CHECK(cudaGetDevice(&device));
  SKIM_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

// Grid of one product: row blocks of every group, each split along K so that the whole grid
// covers the device about twice, or further when a slice's inputs would not fit shared memory.
template <int R, int T, int U>
void launch(const DeviceLutLayer& layer, const float* x, int64_t batch, float* y, void* stream) {
  static_assert(kLutRowAlign % R == 0, "a row tile must not straddle the group padding");
  if (batch <= 0) return;
  const int64_t token_tiles = (batch + T - 1) / T;
  if (token_tiles > 65535) throw_invalid_argument("lut product", "batch too large for one grid");
  Args a;
  a.groups = static_cast<int>(layer.groups().size());
  a.x = x;
  a.alpha = reinterpret_cast<const __half*>(layer.alpha());
  a.cols = layer.cols();
  a.batch = batch;
  a.rows = layer.rows();
  a.y = y;

  int64_t row_blocks_total = 0;
  for (const DeviceLutGroup& d : layer.groups())
    row_blocks_total += (d.rows_padded + kWarps * R - 1) / (kWarps * R);
  const int64_t want_blocks = 2 * int64_t{multiprocessors()};
  const int64_t want_split =
      std::max<int64_t>(1, (want_blocks + row_blocks_total * token_tiles - 1) /
                               std::max<int64_t>(1, row_blocks_total * token_tiles));

  int64_t blocks = 0;
  int x_stride = 0;
  for (int i = 0; i < a.groups; ++i) {
    const DeviceLutGroup& d = layer.groups()[static_cast<size_t>(i)];
    GroupArgs& g = a.group[i];
    const int64_t seg_cols = lut_segment_cols(d.bits);
    const int64_t segments = d.words_per_row / kLutSegmentWords;
    const int64_t max_segs = std::max<int64_t>(1, kSliceFloats / T / seg_cols);
    int64_t split = std::max((segments + max_segs - 1) / max_segs, std::min(want_split, segments));
    const int64_t per_slice = (segments + split - 1) / split;
    split = (segments + per_slice - 1) / per_slice;
    g.words = d.words.data();
    g.lut = reinterpret_cast<const __half*>(d.lut.data());
    g.row_index = d.row_index.data();
    g.bits = d.bits;
    g.rows_padded = static_cast<int>(d.rows_padded);
    g.words_per_row = static_cast<int>(d.words_per_row);
    g.segments = static_cast<int>(segments);
    g.segs_per_slice = static_cast<int>(per_slice);
    g.ksplit = static_cast<int>(split);
    g.row_blocks = static_cast<int>((d.rows_padded + kWarps * R - 1) / (kWarps * R));
    g.block_begin = static_cast<int>(blocks);
    blocks += int64_t{g.row_blocks} * g.ksplit;
    x_stride = std::max(x_stride, static_cast<int>(per_slice * seg_cols));
    if (split > 1) a.accumulate = true;
  }
  if (blocks == 0) return;
  if (blocks > 2147483647) throw_invalid_argument("lut product", "too many blocks");
  a.x_stride = x_stride;
  cudaStream_t s = as_stream(stream);
  if (a.accumulate)
    SKIM_CUDA_CHECK(cudaMemsetAsync(y, 0, static_cast<size_t>(batch * a.rows) * sizeof(float), s));
  const size_t smem = (static_cast<size_t>(T) * x_stride + kWarps * R * kLutStride) * sizeof(float);
  lut_kernel<R, T, U><<<dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(token_tiles)),
                        kWarps * 32, smem, s>>>(a);
  SKIM_CUDA_CHECK_LAUNCH();
}

}  // namespace skim::kernels::gpu::lut
