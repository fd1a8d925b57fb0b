#include "src/quant/scale_training.h"

#include <lapacke.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "kernels/cpu/blas.h"
#include "src/core/error.h"
#include "src/core/half.h"
#include "src/quant/layer_error.h"

namespace skim::quant {
namespace {

// Below this much work a parallel region costs more than it saves: idle OpenBLAS and OpenMP
// threads spin, and on few cores they steal each other's time.
constexpr int64_t kParallelMinWork = int64_t{1} << 20;

constexpr int64_t kRowBlock = 256;
constexpr int64_t kRefineRowBlock = 8;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

float round_half(double v) {
  return half_to_float(float_to_half(static_cast<float>(v)));
}

// Labels and LUTs of every row; LUT i holds k[i] values in the scaled space.
struct Grouping {
  std::vector<uint8_t> labels;
  std::vector<std::vector<double>> lut;
};

Grouping group_rows(const Tensor& w, ImportanceView f, std::span<const int> k,
                    std::span<const float> alpha, KMeansSolver solver) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  Grouping g;
  g.labels.resize(static_cast<size_t>(rows * cols));
  g.lut.resize(static_cast<size_t>(rows));
#pragma omp parallel if (rows * cols >= kParallelMinWork)
  {
    std::vector<float> u(cols), gw(cols);
#pragma omp for schedule(dynamic, 8)
    for (int64_t i = 0; i < rows; ++i) {
      const auto wi = w.row(i);
      const auto fi = f.row(i, cols);
      for (int64_t j = 0; j < cols; ++j) {
        u[j] = alpha[j] * wi[j];
        gw[j] = fi[j] / (alpha[j] * alpha[j]);
      }
      const auto km = kmeans1d(u, gw, k[i], solver);
      std::copy(km.labels.begin(), km.labels.end(), g.labels.begin() + i * cols);
      g.lut[i].assign(km.centroids.begin(), km.centroids.end());
    }
  }
  return g;
}

// L-full of the layer whose row i is lut_i[labels] / alpha, with fp16-rounded LUT values.
double grouping_error(const Tensor& w, const Tensor& h, const Grouping& g,
                      std::span<const float> alpha) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  Tensor w_hat({rows, cols});
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMinWork)
  for (int64_t i = 0; i < rows; ++i) {
    std::vector<float> lut(g.lut[i].size());
    for (size_t k = 0; k < lut.size(); ++k) lut[k] = round_half(g.lut[i][k]);
    for (int64_t j = 0; j < cols; ++j) w_hat.at(i, j) = lut[g.labels[i * cols + j]] / alpha[j];
  }
  return layer_error(w, w_hat, h);
}

}  // namespace

template <typename T>
double scale_loss_and_grad(const ScaleProblem<T>& p, std::span<const double> log_alpha,
                           std::vector<double>* grad) {
  const int64_t rows = p.rows, cols = p.cols;
  if (static_cast<int64_t>(log_alpha.size()) != cols)
    fail(ErrorKind::kInternal, "scale training: {} log alphas for {} columns", log_alpha.size(),
         cols);
  std::vector<double> a(cols);
  for (int64_t j = 0; j < cols; ++j) a[j] = std::exp(log_alpha[j]);
  if (grad) grad->assign(static_cast<size_t>(cols), 0.0);

  const int64_t block = std::min(rows, kRowBlock);
  std::vector<T> d(static_cast<size_t>(block * cols)), g(static_cast<size_t>(block * cols)),
      w_hat(static_cast<size_t>(block * cols));
  // Per row of the block: centroid c, weight sum D and segment sum T of G / alpha, per cluster.
  std::vector<int64_t> off(static_cast<size_t>(block + 1));
  std::vector<double> c, den, seg, row_loss(static_cast<size_t>(block));
  double loss = 0.0;
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    const int64_t nr = std::min(kRowBlock, rows - r0);
    off[0] = 0;
    for (int64_t i = 0; i < nr; ++i) off[i + 1] = off[i] + p.k[r0 + i];
    c.assign(static_cast<size_t>(off[nr]), 0.0);
    den.assign(static_cast<size_t>(off[nr]), 0.0);
    seg.assign(static_cast<size_t>(off[nr]), 0.0);
#pragma omp parallel for schedule(static) if (nr * cols >= kParallelMinWork)
    for (int64_t i = 0; i < nr; ++i) {
      const int64_t row = r0 + i;
      const T* wi = p.w + row * cols;
      const uint8_t* li = p.labels + row * cols;
      const auto fi = p.f.row(row, cols);
      double* ci = c.data() + off[i];
      double* di = den.data() + off[i];
      for (int64_t j = 0; j < cols; ++j) {
        ci[li[j]] += fi[j] * static_cast<double>(wi[j]) / a[j];
        di[li[j]] += fi[j] / (a[j] * a[j]);
      }
      for (int64_t k = 0; k < p.k[row]; ++k) ci[k] = di[k] > 0.0 ? ci[k] / di[k] : 0.0;
      for (int64_t j = 0; j < cols; ++j) {
        const double v = ci[li[j]] / a[j];
        w_hat[i * cols + j] = static_cast<T>(v);
        d[i * cols + j] = static_cast<T>(v - static_cast<double>(wi[j]));
      }
    }
    kernels::gemm(false, false, nr, cols, cols, T{1}, d.data(), cols, p.h, cols, T{0}, g.data(),
                  cols);
#pragma omp parallel for schedule(static) if (nr * cols >= kParallelMinWork)
    for (int64_t i = 0; i < nr; ++i) {
      const T* gi = g.data() + i * cols;
      const T* di = d.data() + i * cols;
      double s = 0.0;
      for (int64_t j = 0; j < cols; ++j) s += static_cast<double>(gi[j]) * di[j];
      row_loss[i] = s;
      if (grad) {
        const uint8_t* li = p.labels + (r0 + i) * cols;
        double* ti = seg.data() + off[i];
        for (int64_t j = 0; j < cols; ++j) ti[li[j]] += 2.0 * gi[j] / a[j];
      }
    }
    for (int64_t i = 0; i < nr; ++i) loss += row_loss[i];
    if (!grad) continue;
      // d loss / d log alpha_j: the direct path through W^_ij = c / alpha_j, plus the path
      // through the centroid of j's cluster. Columns in parallel, rows in order: the sum does
      // not depend on the thread count.
#pragma omp parallel for schedule(static) if (nr * cols >= kParallelMinWork)
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0.0;
      for (int64_t i = 0; i < nr; ++i) {
        const int64_t row = r0 + i;
        const int l = p.labels[row * cols + j];
        const double fij = p.f.row(row, cols)[j];
        const double gij = 2.0 * static_cast<double>(g[i * cols + j]);
        s -= gij * static_cast<double>(w_hat[i * cols + j]);
        const double dd = den[off[i] + l];
        if (dd > 0.0) {
          const double dc = (2.0 * c[off[i] + l] * fij / (a[j] * a[j]) -
                             fij * static_cast<double>(p.w[row * cols + j]) / a[j]) /
                            dd;
          s += seg[off[i] + l] * dc;
        }
      }
      (*grad)[j] += s;
    }
  }
  return loss;
}

template double scale_loss_and_grad<float>(const ScaleProblem<float>&, std::span<const double>,
                                           std::vector<double>*);
template double scale_loss_and_grad<double>(const ScaleProblem<double>&, std::span<const double>,
                                            std::vector<double>*);

void refine_luts_full_hessian(const Tensor& w, const Tensor& h, std::span<const uint8_t> labels,
                              std::span<const float> alpha, std::vector<std::vector<double>>& lut) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const int64_t blocks = (rows + kRefineRowBlock - 1) / kRefineRowBlock;
#pragma omp parallel if (rows * cols * cols >= kParallelMinWork)
  {
    std::vector<std::vector<double>> ph(kRefineRowBlock);  // P H of each row: [k][cols]
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * kRefineRowBlock;
      const int64_t nr = std::min(kRefineRowBlock, rows - r0);
      for (int64_t r = 0; r < nr; ++r)
        ph[r].assign(lut[r0 + r].size() * static_cast<size_t>(cols), 0.0);
      // One pass over H for the whole block of rows: row j of H goes to cluster l_rj of row r.
      for (int64_t j = 0; j < cols; ++j) {
        const float* hj = h.data() + j * cols;
        const double inv = 1.0 / alpha[j];
        for (int64_t r = 0; r < nr; ++r) {
          double* dst = ph[r].data() + labels[(r0 + r) * cols + j] * cols;
          for (int64_t t = 0; t < cols; ++t) dst[t] += inv * hj[t];
        }
      }
      for (int64_t r = 0; r < nr; ++r) {
        const int64_t row = r0 + r;
        const int k = static_cast<int>(lut[row].size());
        const uint8_t* li = labels.data() + row * cols;
        const auto wi = w.row(row);
        std::vector<double> a(static_cast<size_t>(k * k), 0.0), rhs(k, 0.0);
        std::vector<int> count(k, 0);
        for (int64_t j = 0; j < cols; ++j) {
          ++count[li[j]];
          const double inv = 1.0 / alpha[j];
          for (int q = 0; q < k; ++q) {
            a[q * k + li[j]] += ph[r][q * cols + j] * inv;
            rhs[q] += ph[r][q * cols + j] * wi[j];
          }
        }
        std::vector<int> used;
        for (int q = 0; q < k; ++q)
          if (count[q] > 0) used.push_back(q);
        const int m = static_cast<int>(used.size());
        std::vector<double> sa(static_cast<size_t>(m * m)), sb(m);
        for (int x = 0; x < m; ++x) {
          sb[x] = rhs[used[x]];
          for (int y = 0; y < m; ++y) sa[x * m + y] = a[used[x] * k + used[y]];
        }
        if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', m, 1, sa.data(), m, sb.data(), 1) != 0) continue;
        for (int x = 0; x < m; ++x) lut[row][used[x]] = sb[x];
      }
    }
  }
}

LutLayer scaled_kmeans(const Tensor& w, const Tensor& h, ImportanceView f,
                       std::span<const uint8_t> bits, const ScaleTrainingOptions& options,
                       ScaleTrainingReport* report) {
  using clock = std::chrono::steady_clock;
  const int64_t rows = w.dim(0), cols = w.dim(1);
  if (w.ndim() != 2 || h.ndim() != 2 || h.dim(0) != cols || h.dim(1) != cols ||
      static_cast<int64_t>(bits.size()) != rows)
    fail(ErrorKind::kInternal, "scaled K-means: W {}, H {} and {} row bit-widths do not match",
         w.shape_string(), h.shape_string(), bits.size());
  std::vector<int> k(rows);
  for (int64_t i = 0; i < rows; ++i) {
    if (bits[i] < 1 || bits[i] > 8)
      fail(ErrorKind::kInternal, "scaled K-means: row {} has {} bits", i, bits[i]);
    k[i] = 1 << bits[i];
  }
  ScaleTrainingReport rep;

  auto t0 = clock::now();
  std::vector<float> alpha(cols, 1.0f);
  Grouping unscaled = group_rows(w, f, k, alpha, options.solver);
  rep.kmeans_s += seconds_since(t0);
  rep.error_unscaled = grouping_error(w, h, unscaled, alpha);

  Grouping chosen;
  if (options.train && options.steps > 0) {
    t0 = clock::now();
    const ScaleProblem<float> prob{rows,    cols, w.data(), h.data(), f, unscaled.labels.data(),
                                   k.data()};
    std::vector<double> theta(cols, 0.0), m(cols, 0.0), v(cols, 0.0), grad;
    constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;
    for (int step = 0; step < options.steps; ++step) {
      const double loss = scale_loss_and_grad(prob, theta, &grad);
      if (step == 0) rep.loss_first = loss;
      const double lr =
          options.lr * std::pow(options.lr_decay, step / std::max(1, options.lr_decay_every));
      const double c1 = 1.0 - std::pow(kBeta1, step + 1), c2 = 1.0 - std::pow(kBeta2, step + 1);
      for (int64_t j = 0; j < cols; ++j) {
        m[j] = kBeta1 * m[j] + (1 - kBeta1) * grad[j];
        v[j] = kBeta2 * v[j] + (1 - kBeta2) * grad[j] * grad[j];
        theta[j] -= lr * (m[j] / c1) / (std::sqrt(v[j] / c2) + kEps);
      }
    }
    rep.loss_last = scale_loss_and_grad<float>(prob, theta, nullptr);
    for (int64_t j = 0; j < cols; ++j) alpha[j] = round_half(std::exp(theta[j]));
    rep.training_s += seconds_since(t0);

    t0 = clock::now();
    chosen = group_rows(w, f, k, alpha, options.solver);
    rep.kmeans_s += seconds_since(t0);
    rep.error_trained = grouping_error(w, h, chosen, alpha);
    if (!(rep.error_trained < rep.error_unscaled)) {
      rep.kept_unscaled = true;
      std::fill(alpha.begin(), alpha.end(), 1.0f);
      chosen = std::move(unscaled);
    }
  } else {
    rep.error_trained = rep.error_unscaled;
    chosen = std::move(unscaled);
  }
  rep.error_final = rep.kept_unscaled ? rep.error_unscaled : rep.error_trained;

  if (options.refine_full_hessian) {
    t0 = clock::now();
    Grouping refined = chosen;
    refine_luts_full_hessian(w, h, refined.labels, alpha, refined.lut);
    const double e = grouping_error(w, h, refined, alpha);
    if (e < rep.error_final) {
      rep.error_final = e;
      chosen = std::move(refined);
    }
    rep.refine_s = seconds_since(t0);
  }

  LutLayer out;
  out.rows = rows;
  out.cols = cols;
  out.bits.assign(bits.begin(), bits.end());
  out.codebook_offset.resize(rows + 1, 0);
  for (int64_t i = 0; i < rows; ++i) out.codebook_offset[i + 1] = out.codebook_offset[i] + k[i];
  out.codebook.resize(static_cast<size_t>(out.codebook_offset[rows]));
  for (int64_t i = 0; i < rows; ++i)
    for (int q = 0; q < k[i]; ++q)
      out.codebook[out.codebook_offset[i] + q] =
          float_to_half(static_cast<float>(chosen.lut[i][q]));
  out.labels = std::move(chosen.labels);
  out.alpha.resize(cols);
  for (int64_t j = 0; j < cols; ++j) out.alpha[j] = float_to_half(alpha[j]);
  if (report) *report = rep;
  return out;
}

}  // namespace skim::quant
