#pragma once
// GPU quantization kernels: host launchers and small per-op drivers, CUDA-free so CPU code can
// include this header. Every pointer is a DEVICE pointer unless its name starts with host_;
// matrices are row-major; `stream` is a cudaStream_t (nullptr: the legacy default stream).
// Each op has a CPU twin in src/quant/ and a gpu-labelled test comparing the two. A failed
// CUDA / cuBLAS / cuSOLVER call throws skim::Error (kNumeric). Defined in kernels/cuda/*.cu,
// available when SKIM_HAVE_CUDA.
#include <cstdint>

namespace skim::kernels::gpu {

// ---- Hessian (twin: quant::HessianAccumulator) ---------------------------------------------
// sum [cols, cols] (double, full symmetric) += x^T x for x [tokens, cols] fp32: one cuBLAS SSYRK
// into the fp32 `scratch` [cols, cols], then an fp64 add, as the CPU twin does per batch.
void hessian_accumulate(const float* x, int64_t tokens, int64_t cols, double* sum, float* scratch,
                        void* stream);
// h = sum / tokens as fp32 (undamped).
void hessian_mean(const double* sum, int64_t tokens, int64_t cols, float* h, void* stream);

// ---- Fixed-point Hessian (twin: pipeline::ExactHessian and sample_bound) -------------------
// energy [cols] = sum_t x_tj^2 of x [seq, cols], in double, the tokens in order per column (the
// bound of one sample is their largest: pipeline::bound_of_energies).
void column_energies(const float* x, int64_t seq, int64_t cols, double* energy, void* stream);
// sum [cols, cols] += rint(2^-exponent * x^T x) entry by entry (ties to even, as the twin), x^T x
// of one sample x [seq, cols] by one fp32 SSYRK into `scratch` [cols, cols].
void exact_hessian_add(const float* x, int64_t seq, int64_t cols, int exponent, int64_t* sum,
                       float* scratch, void* stream);
// h = fp32(2^exponent * sum / tokens), the twin's arithmetic (pipeline::hessian_from_sums).
void exact_hessian_mean(const int64_t* sum, int exponent, int64_t tokens, int64_t cols, float* h,
                        void* stream);

// ---- Weighted 1-D K-means per row (twin: quant::kmeans1d) ---------------------------------
enum class KMeansMode {
  kLloyd,  // exact DP over the twin's coarse grid of split points, then Lloyd (the default)
  kExact,  // DP over every split point: O(K n^2) per row on the GPU, for small K or n only
};

// The K-means weights f_ij = f[i * row_stride + j]; row_stride 0 shares one [cols] vector.
struct RowWeights {
  const float* values = nullptr;
  int64_t row_stride = 0;
};

// One cluster count's results for `rows` rows: centroids [rows * k_stride] (ascending, a row
// with fewer distinct segments than k repeats its last centroid), labels [rows * cols],
// objective [rows] = sum_j f_ij (w_ij - c_{l_ij})^2 (uniform weights when a row's f sums to 0).
// Any pointer may be null when not wanted.
struct KMeansLevelOut {
  float* centroids = nullptr;
  int64_t k_stride = 0;  // >= the row's k
  uint8_t* labels = nullptr;
  double* objective = nullptr;
};

// Solves every row of w [rows, cols] at each cluster count host_ks[l] (1..256), sorting each
// row once. With alpha [cols] (device, may be null) the rows clustered are alpha_j w_ij with
// weights f_ij / alpha_j^2 (the scaled grouping step of SKIM Algorithm 2); centroids are then
// in the scaled space. Rows are processed in chunks, so scratch stays bounded.
void kmeans_rows(const float* w, RowWeights f, const float* alpha, int64_t rows, int64_t cols,
                 const int* host_ks, int levels, KMeansMode mode, const KMeansLevelOut* host_out,
                 void* stream);

// The same with a cluster count per row: k [rows] (device), k_stride >= max k.
void kmeans_rows_varying_k(const float* w, RowWeights f, const float* alpha, int64_t rows,
                           int64_t cols, const int* k, int k_max, KMeansMode mode,
                           KMeansLevelOut out, void* stream);

// ---- Error tables (twin: quant::build_error_table) ----------------------------------------
// How LUT entries are stored (twin: quant::LutEntries): fp16, or 8-bit codes on a per-row grid.
enum class LutStorage { kF16, kQ8, kD8 };

// e [rows * (b_max - b_min + 1)] (device, row-major as quant::ErrorTable::e):
// e[i][b] = dw H dw^T for row i quantized by K-means at 2^b centroids with its LUT stored as
// `storage`. One SGEMM (dW H) and one row reduction per level and chunk of rows. The greedy
// allocation stays on the host (quant::allocate_bits on the downloaded table).
void error_table(const float* w, const float* h, RowWeights f, int64_t rows, int64_t cols,
                 int b_min, int b_max, KMeansMode mode, LutStorage storage, double* e,
                 void* stream);

// Each row's k ascending centroids (centroids [rows * k_stride]) replaced by what a reader
// decodes once they are stored as `storage` (twin: quant::store_lut_entries), one thread a row.
void store_lut_entries(float* centroids, int64_t k_stride, int k, int64_t rows, LutStorage storage,
                       void* stream);

// dw = fp16(centroids[l_ij]) / alpha_j - w_ij (alpha may be null: 1), and
// out[i] = dw_i H dw_i^T for d [rows, cols] using `g` [rows, cols] as scratch.
void dequantize_delta(const float* w, const float* centroids, int64_t k_stride,
                      const uint8_t* labels, const float* alpha, int64_t rows, int64_t cols,
                      float* dw, void* stream);
void row_quadratic_forms(const float* d, int64_t rows, int64_t cols, const float* h, float* g,
                         double* out, void* stream);

// ---- Scale training step (twin: quant::scale_loss_and_grad, quant::scaled_kmeans) -----------
// With labels frozen: centroids = g-weighted means, W^ = c / alpha, G = 2 (W^ - W) H (SGEMM),
// segment sums of G per (row, cluster), the analytic gradient per column (d/d log alpha).
// loss (device, 1 double) and grad [cols] (device, double) are overwritten. k [rows] (device).
// Scratch is allocated per call; rows are processed in chunks.
void scale_loss_and_grad(const float* w, const float* h, RowWeights f, const uint8_t* labels,
                         const int* k, int k_max, int64_t rows, int64_t cols,
                         const double* log_alpha, double* loss, double* grad, void* stream);

// out [width] = ((0 + parts[0]) + parts[1]) + ... over `ranks` partials [ranks, width] gathered
// from the ranks: comm::ordered_sum's order with one group per rank (the scale training's
// loss and gradient when NCCL sums them on the device).
void sum_in_rank_order(const double* parts, int ranks, int64_t width, double* out, void* stream);

// One Adam step on theta = log alpha (twin: the loop of quant::scaled_kmeans): m, v [cols]
// double; step counts from 0; lr already decayed by the caller.
void adam_step(double* theta, double* m, double* v, const double* grad, int64_t cols, int step,
               double lr, void* stream);

// The whole training loop of quant::scaled_kmeans on the device: theta starts at 0, `steps`
// Adam steps with lr * decay^(step / decay_every). Writes alpha [cols] (device, fp32 rounded
// to fp16 like the twin) and returns the losses before the first and after the last step.
struct ScaleTrainResult {
  double loss_first = 0.0;
  double loss_last = 0.0;
};
ScaleTrainResult train_scales(const float* w, const float* h, RowWeights f, const uint8_t* labels,
                              const int* k, int k_max, int64_t rows, int64_t cols, int steps,
                              double lr, int decay_every, double decay, float* alpha, void* stream);

// ---- LUT refinement's normal equations (twin: quant::cpu_refine_systems) --------------------
// One layer's refinement problem: w [rows, cols], h [cols, cols] (fp32), labels [rows * cols],
// inva [cols] = 1 / alpha_j (computed on the host, so the same floats as the twin's), k [rows]
// the LUT sizes (k_max their largest, <= 256).
struct RefineInputs {
  const float* w = nullptr;
  const float* h = nullptr;
  const uint8_t* labels = nullptr;
  const float* inva = nullptr;
  const int* k = nullptr;
  int k_max = 1;
  int64_t cols = 0;
};
// A block of `rows` rows starting at the inputs' pointers (offset by the caller): row r's lines
// of P at line_off[r] of `lines`, its system at a_off[r] / rhs_off[r] (device [rows + 1] each).
struct RefineLayout {
  int64_t rows = 0;
  int64_t lines = 0;
  const int64_t* line_off = nullptr;
  const int64_t* a_off = nullptr;
  const int64_t* rhs_off = nullptr;
};
// a_r = P_r H P_r^T (k_r x k_r, row-major) and rhs_r = P_r H w_r^T in double, P_r[q][j] = [l_rj
// = q] / alpha_j; p and y [lines, cols] are scratch. One SGEMM (fp32, not TF32) for Y = P H, then
// each line of Y summed in column order as the twin does.
void refine_systems(const RefineInputs& in, const RefineLayout& layout, float* p, float* y,
                    double* a, double* rhs, void* stream);

// ---- GPTQ (twin: quant::gptq_quantize, per-row or grouped quantizer) -----------------------
// Not here (CPU only for now): slim's group widths and clipping search.
struct GptqDeviceOptions {
  int bits = 4;              // 2..8
  int64_t group_size = 0;    // 0: one group per row; otherwise must divide block_size
  int64_t block_size = 128;  // columns per lazy-update block (<= 256)
  double damp = 0.01;
};
// w [rows, cols] fp32, h [cols, cols] fp64 (undamped). Outputs: codes [rows * cols] in the
// original column order, scale / zero [rows * groups] as fp16 bit patterns. No act-order.
// Cholesky, inverse and the Cholesky of the inverse in fp64 with cuSOLVER; the in-block column
// loop is one kernel, the lazy update one SGEMM per block. Throws kNumeric when H is not
// positive definite.
void gptq_quantize(const float* w, const double* h, int64_t rows, int64_t cols,
                   const GptqDeviceOptions& options, uint8_t* codes, uint16_t* scale,
                   uint16_t* zero, void* stream);

// ---- Round to nearest (twin: quant::rtn_quantize) -----------------------------------------
// w [rows, cols] fp32 (finite, within fp16's range: the caller checks, as the twin does).
// Outputs as gptq_quantize's: codes [rows * cols], scale / zero [rows * groups] fp16 bit
// patterns; group_size 0 or >= cols: one group per row. The same bits as the twin.
void rtn_quantize(const float* w, int64_t rows, int64_t cols, int bits, int64_t group_size,
                  uint8_t* codes, uint16_t* scale, uint16_t* zero, void* stream);

// ---- Packing (twin: quant::pack_row) -------------------------------------------------------
// Packs values [rows * cols] (each < 2^bits[i]) row by row: row i goes to out + out_offset[i]
// (bytes, [rows] device int64) with the little-endian bit stream of packed_layer.h; bits [rows]
// device. The bytes of each row are written completely (unused high bits zero).
void pack_indices(const uint8_t* values, const uint8_t* bits, const int64_t* out_offset,
                  int64_t rows, int64_t cols, uint8_t* out, void* stream);

}  // namespace skim::kernels::gpu
