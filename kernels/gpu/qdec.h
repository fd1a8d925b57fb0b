#pragma once
// QDEC's residual correction on the GPU, CUDA-free like quant_kernels.h: device pointers unless
// noted, `stream` is a cudaStream_t (nullptr: the legacy default stream), a failed CUDA call
// throws skim::Error (kNumeric). Twin: kernels::qdec_correct (kernels/cpu/qdec.h), compared by
// the gpu-labelled test tests/kernels_gpu/test_qdec_gpu.cpp. Defined in kernels/cuda/qdec.cu,
// available when SKIM_HAVE_CUDA.
#include <cstdint>

namespace skim::kernels::gpu {

// For each of `tokens` tokens b: y[b][i] += scale[i] * sum_{s<k} x[b][c] * (code(i, c) - 8),
// c = channels[b * k + s], i < rows. Layouts as the CPU twin: codes [cols][(rows + 1) / 2]
// (channel-major, row 2m in the low nibble of byte m), scale [rows], x [tokens, cols],
// channels [tokens, k] (each in [0, cols), in the order to add them), y [tokens, rows].
//
// codes may be device memory or mapped pinned host memory (cudaHostAllocMapped, passed as its
// device pointer): only the selected channels' bytes then cross the bus, so a residual that
// does not fit on the device can stay on the host (zero-copy).
//
// One thread per (token, row) adds the channels in the given order into one fp32 accumulator,
// then y += scale * acc: the twin's order, so the two agree up to rounding (the GPU contracts
// the multiply-adds into FMAs). A bad size (rows or cols < 0, k outside [0, cols], tokens < 0)
// is a caller bug and throws skim::Error (kInternal).
void qdec_correct(const uint8_t* codes, const float* scale, int64_t rows, int64_t cols,
                  const float* x, const int32_t* channels, int64_t k, int64_t tokens, float* y,
                  void* stream);

}  // namespace skim::kernels::gpu
