#pragma once
// The per-row weighted 1-D K-means engine shared by the K-means, error-table and scale drivers:
// prepare() sorts a chunk of rows (segmented radix sort, stable, so ties keep index order as in
// the CPU twin) and builds the prefix sums of g, g v, g v^2 in double (block scans); solve()
// runs one cluster count per row (one thread block per row) and writes centroids, labels and
// objectives.
#include <cstdint>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/gpu/quant_kernels.h"

namespace skim::kernels::gpu {

class RowKMeans {
 public:
  // Scratch for up to max_rows rows of `cols` values and cluster counts up to k_max.
  RowKMeans(int64_t max_rows, int64_t cols, int k_max, KMeansMode mode, cudaStream_t stream);

  // Rows a chunk may hold so that the scratch stays near budget_bytes.
  static int64_t rows_per_chunk(int64_t cols, int k_max, KMeansMode mode, int64_t budget_bytes);

  // w and f point at the chunk's first row. alpha (nullable) selects the scaled problem.
  void prepare(const float* w, RowWeights f, const float* alpha, int64_t rows, cudaStream_t stream);
  // k_row (device, nullable: every row uses k) points at the chunk's first row; out's pointers
  // likewise.
  void solve(int k, const int* k_row, KMeansLevelOut out, cudaStream_t stream);

 private:
  int64_t max_rows_, cols_;
  int k_max_;
  KMeansMode mode_;
  int64_t rows_ = 0;
  int64_t dp_points_;  // split points of the DP kept in global scratch per row (+1)
  const float* g_ = nullptr;
  int64_t g_stride_ = 0;
  DeviceBuffer<float> keys_in_, keys_, g_scaled_;
  DeviceBuffer<int> order_in_, order_, offsets_, bounds_, segments_, uniform_;
  DeviceBuffer<double> p_, shift_, dp_values_;
  DeviceBuffer<int> dp_opt_;
  DeviceBuffer<unsigned char> sort_temp_;
};

}  // namespace skim::kernels::gpu
