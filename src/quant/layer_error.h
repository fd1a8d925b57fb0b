#pragma once
// The full-Hessian (L-full) error of a quantized layer: err = tr((W - W^) H (W - W^)^T), the
// output error summed over the calibration tokens. Every method is compared with it.
#include <cstdint>
#include <vector>

#include "src/core/tensor.h"

namespace skim::quant {

// tr((W - W^) H (W - W^)^T) for W, W^ [rows, cols] and symmetric H [cols, cols]; the products
// run in fp32 GEMMs, the sums in double.
double layer_error(const Tensor& w, const Tensor& w_hat, const Tensor& h);

// Per row: e_i = dw_i H dw_i^T.
std::vector<double> row_errors(const Tensor& w, const Tensor& w_hat, const Tensor& h);

// tr(W H W^T): the layer's output energy, the normaliser for global allocation.
double output_energy(const Tensor& w, const Tensor& h);

// Per row: w_i H w_i^T.
std::vector<double> row_energies(const Tensor& w, const Tensor& h);

// out[i] = d_i H d_i^T for the rows of d [rows, cols] (row-major), in blocks of rows: one GEMM
// per block, then row sums of (d H) .* d. The double overload is the test reference.
void row_quadratic_forms(const float* d, int64_t rows, int64_t cols, const float* h, double* out);
void row_quadratic_forms(const double* d, int64_t rows, int64_t cols, const double* h, double* out);

}  // namespace skim::quant
