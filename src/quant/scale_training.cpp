#include "src/quant/scale_training.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include "kernels/cpu/blas.h"
#include "src/core/error.h"
#include "src/core/half.h"
#include "src/core/parallel_errors.h"
#include "src/core/stopwatch.h"
#include "src/quant/grid_fit.h"
#include "src/quant/layer_error.h"
#include "src/quant/row_group.h"

namespace skim::quant {
namespace {

// Below this much work a parallel region costs more than it saves: idle OpenBLAS and OpenMP
// threads spin, and on few cores they steal each other's time.
constexpr int64_t kParallelMinWork = int64_t{1} << 20;
// Rows per GEMM: the whole layer when it is small, else blocks of about this many elements.
constexpr int64_t kBlockElements = int64_t{1} << 23;

float round_half(double v) {
  return half_to_float(float_to_half(static_cast<float>(v)));
}

// Labels and LUTs of every row; LUT i holds k[i] values in the scaled space.
struct Grouping {
  std::vector<uint8_t> labels;
  std::vector<std::vector<double>> lut;
};

// Row i by weighted K-means (on the CPU, or by `row_kmeans` for every LUT row at once), or
// (grid[i]) by fit_grid with its LUT the grid's points.
Grouping group_rows(const Tensor& w, ImportanceView f, std::span<const int> k,
                    std::span<const uint8_t> grid, std::span<const float> alpha,
                    KMeansSolver solver, const RowKMeansFn& row_kmeans) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  Grouping g;
  g.labels.resize(static_cast<size_t>(rows * cols));
  g.lut.resize(static_cast<size_t>(rows));
  if (row_kmeans) {
    row_kmeans(w, f, k, alpha, solver, g.labels, g.lut);
    bool sizes = g.labels.size() == static_cast<size_t>(rows * cols) &&
                 g.lut.size() == static_cast<size_t>(rows);
    for (int64_t i = 0; sizes && i < rows; ++i)
      sizes = g.lut[i].size() == static_cast<size_t>(k[i]);
    if (!sizes)
      fail(ErrorKind::kInternal, "grouping: {} labels and {} LUTs of the wrong sizes for [{}, {}]",
           g.labels.size(), g.lut.size(), rows, cols);
  }
  const bool any_grid = std::any_of(grid.begin(), grid.end(), [](uint8_t x) { return x != 0; });
  if (row_kmeans && !any_grid) return g;
  ParallelErrors errors;
#pragma omp parallel if (rows * cols >= kParallelMinWork)
  {
    std::vector<float> u(cols), gw(cols);
#pragma omp for schedule(dynamic, 8)
    for (int64_t i = 0; i < rows; ++i) {
      errors.run([&] {
        if (row_kmeans && grid[i] == 0) return;  // clustered above
        const auto wi = w.row(i);
        const auto fi = f.row(i, cols);
        for (int64_t j = 0; j < cols; ++j) {
          u[j] = alpha[j] * wi[j];
          gw[j] = fi[j] / (alpha[j] * alpha[j]);
        }
        if (grid[i] != 0) {
          const auto fit = fit_grid(u, gw, k[i]);
          std::copy(fit.labels.begin(), fit.labels.end(), g.labels.begin() + i * cols);
          g.lut[i].resize(static_cast<size_t>(k[i]));
          for (int q = 0; q < k[i]; ++q) g.lut[i][q] = fit.lo + fit.step * q;
          return;
        }
        const auto km = kmeans1d(u, gw, k[i], solver);
        std::copy(km.labels.begin(), km.labels.end(), g.labels.begin() + i * cols);
        g.lut[i].assign(km.centroids.begin(), km.centroids.end());
      });
    }
  }
  errors.rethrow();
  return g;
}

// L-full of the layer whose row i is lut_i[labels] / alpha, with fp16-rounded LUT values, summed
// over every rank's rows.
double grouping_error(const Tensor& w, const Tensor& h, const Grouping& g,
                      std::span<const float> alpha, RowGroup& group) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  Tensor w_hat({rows, cols});
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMinWork)
  for (int64_t i = 0; i < rows; ++i) {
    std::vector<float> lut(g.lut[i].size());
    for (size_t k = 0; k < lut.size(); ++k) lut[k] = round_half(g.lut[i][k]);
    for (int64_t j = 0; j < cols; ++j) w_hat.at(i, j) = lut[g.labels[i * cols + j]] / alpha[j];
  }
  return sum_over_rows(group, row_errors(w, w_hat, h));
}

}  // namespace

namespace {

// Rows per partial column sum of the gradient: a fixed partition, so the sums over rows are
// added in the same order whatever the number of threads or ranks (it divides kRowUnit, so
// every rank's chunks are chunks of the whole layer).
constexpr int64_t kGradChunk = 16;
static_assert(kRowUnit % kGradChunk == 0);

// The fp32 per-element loops below are also compiled for AVX-512 and AVX2 and picked at run
// time (their table look-ups become gathers). Without contraction into FMAs every version
// computes each element with the same roundings, so the result does not depend on the CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SKIM_VECTOR_CLONES                                                     \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), \
                 optimize("fp-contract=off")))
#else
#define SKIM_VECTOR_CLONES
#endif

// d_j = c[l_j] / alpha_j - w_j.
SKIM_VECTOR_CLONES void residual_row(const float* w, const uint8_t* labels, const double* c,
                                     const double* inva, int64_t n, float* d) {
  for (int64_t j = 0; j < n; ++j)
    d[j] = static_cast<float>(c[labels[j]] * inva[j] - static_cast<double>(w[j]));
}
void residual_row(const double* w, const uint8_t* labels, const double* c, const double* inva,
                  int64_t n, double* d) {
  for (int64_t j = 0; j < n; ++j) d[j] = c[labels[j]] * inva[j] - w[j];
}

// part_j += g_j / alpha_j * tp[l_j] + w_j * fa_j * tr[l_j] + fa2_j * tq[l_j]: one row's share
// of the gradient in log alpha.
SKIM_VECTOR_CLONES void gradient_row(const float* g, const float* w, const uint8_t* labels,
                                     const double* inva, const double* fa, const double* fa2,
                                     const double* tp, const double* tq, const double* tr,
                                     int64_t n, double* part) {
  for (int64_t j = 0; j < n; ++j) {
    const int l = labels[j];
    part[j] += static_cast<double>(g[j]) * inva[j] * tp[l] +
               static_cast<double>(w[j]) * fa[j] * tr[l] + fa2[j] * tq[l];
  }
}
void gradient_row(const double* g, const double* w, const uint8_t* labels, const double* inva,
                  const double* fa, const double* fa2, const double* tp, const double* tq,
                  const double* tr, int64_t n, double* part) {
  for (int64_t j = 0; j < n; ++j) {
    const int l = labels[j];
    part[j] += g[j] * inva[j] * tp[l] + w[j] * fa[j] * tr[l] + fa2[j] * tq[l];
  }
}

// Scatter-adds x[j] into bins[labels[j]] with four interleaved copies of the bins, so a run
// of equal labels does not serialise on one memory location; the copies are summed in a fixed
// order. bins: [4 * k], zeroed by the caller; out: [k].
template <typename X>
void segment_sums(const uint8_t* labels, int64_t n, int k, X x, double* bins, double* out) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    bins[labels[j]] += x(j);
    bins[k + labels[j + 1]] += x(j + 1);
    bins[2 * k + labels[j + 2]] += x(j + 2);
    bins[3 * k + labels[j + 3]] += x(j + 3);
  }
  for (; j < n; ++j) bins[labels[j]] += x(j);
  for (int q = 0; q < k; ++q)
    out[q] = (bins[q] + bins[k + q]) + (bins[2 * k + q] + bins[3 * k + q]);
}

// The loss and gradient of one frozen-label problem, with every buffer allocated once and
// reused across the Adam steps.
template <typename T>
class ScaleObjective {
 public:
  explicit ScaleObjective(const ScaleProblem<T>& p) : p_(p) {
    const int64_t rows = p.rows, cols = p.cols;
    off_.resize(static_cast<size_t>(rows + 1), 0);
    kmax_ = 1;
    for (int64_t i = 0; i < rows; ++i) {
      off_[i + 1] = off_[i] + p.k[i];
      kmax_ = std::max(kmax_, p.k[i]);
    }
    block_ = std::max<int64_t>(kRowUnit, kBlockElements / std::max<int64_t>(cols, 1));
    block_ = std::min(rows, block_ / kRowUnit * kRowUnit);
    const auto bn = static_cast<size_t>(std::max<int64_t>(block_, 1) * cols);
    d_.resize(bn);
    g_.resize(bn);
    c_.resize(static_cast<size_t>(off_[rows]));
    den_.resize(c_.size());
    chunks_ = (rows + kGradChunk - 1) / kGradChunk;
    part_.resize(static_cast<size_t>(chunks_ * (cols + 1)));
    sum_.resize(static_cast<size_t>(cols + 1));
    inva_.resize(cols);
    inva2_.resize(cols);
    fa_.resize(cols);
    fa2_.resize(cols);
  }

  // The loss and gradient over every rank's rows: each chunk of kGradChunk rows yields a partial
  // (gradient, loss), and the group adds the partials in global chunk order.
  double eval(std::span<const double> log_alpha, std::vector<double>* grad, RowGroup& group) {
    const int64_t rows = p_.rows, cols = p_.cols;
    if (static_cast<int64_t>(log_alpha.size()) != cols)
      fail(ErrorKind::kInternal, "scale training: {} log alphas for {} columns", log_alpha.size(),
           cols);
    const bool shared_f = p_.f.row_stride == 0;
    for (int64_t j = 0; j < cols; ++j) {
      inva_[j] = std::exp(-log_alpha[j]);
      inva2_[j] = inva_[j] * inva_[j];
      if (shared_f) {
        fa_[j] = static_cast<double>(p_.f.values[j]) * inva_[j];
        fa2_[j] = static_cast<double>(p_.f.values[j]) * inva2_[j];
      }
    }
    const int64_t width = grad ? cols + 1 : 1;  // the partial's gradient, then its loss
    const bool par = rows * cols >= kParallelMinWork;
    for (int64_t r0 = 0; r0 < rows; r0 += block_) {
      const int64_t nr = std::min(block_, rows - r0);
      // W^ - W of the block at the weighted-mean centroids.
#pragma omp parallel if (par)
      {
        std::vector<double> bins(static_cast<size_t>(4 * kmax_)), fa, fa2;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < nr; ++i) {
          const int64_t row = r0 + i;
          const double* rfa = row_weights(row, fa, fa2);
          const double* rfa2 = shared_f ? fa2_.data() : fa2.data();
          centroids(row, rfa, rfa2, bins.data());
          const T* wi = p_.w + row * cols;
          const uint8_t* li = p_.labels + row * cols;
          const double* ci = c_.data() + off_[row];
          T* di = d_.data() + i * cols;
          residual_row(wi, li, ci, inva_.data(), cols, di);
        }
      }
      // g = (W^ - W) H: the one GEMM of the step; the gradient of the loss in W^ is 2 g.
      kernels::gemm(false, false, nr, cols, cols, T{1}, d_.data(), cols, p_.h, cols, T{0},
                    g_.data(), cols);
      const int64_t chunks = (nr + kGradChunk - 1) / kGradChunk;
#pragma omp parallel if (par)
      {
        std::vector<double> bins(static_cast<size_t>(4 * kmax_)), seg(kmax_), tp(kmax_), tq(kmax_),
            tr(kmax_), fa, fa2;
#pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < chunks; ++ch) {
          double* part = part_.data() + (r0 / kGradChunk + ch) * width;
          std::fill(part, part + width, 0.0);
          const int64_t i1 = std::min(nr, (ch + 1) * kGradChunk);
          for (int64_t i = ch * kGradChunk; i < i1; ++i) {
            const int64_t row = r0 + i;
            const T* gi = g_.data() + i * cols;
            const T* di = d_.data() + i * cols;
            double s[4] = {0.0, 0.0, 0.0, 0.0};
            int64_t j = 0;
            for (; j + 4 <= cols; j += 4)
              for (int u = 0; u < 4; ++u)
                s[u] += static_cast<double>(gi[j + u]) * static_cast<double>(di[j + u]);
            for (; j < cols; ++j) s[0] += static_cast<double>(gi[j]) * static_cast<double>(di[j]);
            part[width - 1] += (s[0] + s[1]) + (s[2] + s[3]);  // the row's loss
            if (!grad) continue;
            // d loss / d log alpha_j: the direct path through W^_ij = c / alpha_j, plus the
            // path through the centroid of j's cluster (seg = d loss / d c / 2).
            const int k = p_.k[row];
            const uint8_t* li = p_.labels + row * cols;
            std::fill(bins.begin(), bins.begin() + 4 * k, 0.0);
            segment_sums(
                li, cols, k, [&](int64_t t) { return static_cast<double>(gi[t]) * inva_[t]; },
                bins.data(), seg.data());
            const double* ci = c_.data() + off_[row];
            const double* dn = den_.data() + off_[row];
            for (int q = 0; q < k; ++q) {
              tp[q] = -2.0 * ci[q];
              tq[q] = dn[q] > 0.0 ? 4.0 * seg[q] * ci[q] / dn[q] : 0.0;
              tr[q] = dn[q] > 0.0 ? -2.0 * seg[q] / dn[q] : 0.0;
            }
            const double* rfa = row_weights(row, fa, fa2);
            const double* rfa2 = shared_f ? fa2_.data() : fa2.data();
            const T* wi = p_.w + row * cols;
            gradient_row(gi, wi, li, inva_.data(), rfa, rfa2, tp.data(), tq.data(), tr.data(), cols,
                         part);
          }
        }
      }
    }
    group.ordered_sum(part_.data(), chunks_, width, sum_.data());
    if (grad) grad->assign(sum_.begin(), sum_.begin() + cols);
    return sum_[width - 1];
  }

 private:
  // f_ij / alpha_j and f_ij / alpha_j^2 of one row: the shared vectors, or computed into
  // fa, fa2 when f has one row per weight row.
  const double* row_weights(int64_t row, std::vector<double>& fa, std::vector<double>& fa2) const {
    if (p_.f.row_stride == 0) return fa_.data();
    const auto fi = p_.f.row(row, p_.cols);
    fa.resize(p_.cols);
    fa2.resize(p_.cols);
    for (int64_t j = 0; j < p_.cols; ++j) {
      fa[j] = static_cast<double>(fi[j]) * inva_[j];
      fa2[j] = static_cast<double>(fi[j]) * inva2_[j];
    }
    return fa.data();
  }

  // c_ik = sum_{j in S_ik} f_ij w_ij / alpha_j / sum_{j in S_ik} f_ij / alpha_j^2.
  void centroids(int64_t row, const double* rfa, const double* rfa2, double* bins) {
    const int k = p_.k[row];
    const int64_t cols = p_.cols;
    const T* wi = p_.w + row * cols;
    const uint8_t* li = p_.labels + row * cols;
    double* ci = c_.data() + off_[row];
    double* di = den_.data() + off_[row];
    std::fill(bins, bins + 4 * k, 0.0);
    segment_sums(
        li, cols, k, [&](int64_t j) { return rfa[j] * static_cast<double>(wi[j]); }, bins, ci);
    std::fill(bins, bins + 4 * k, 0.0);
    segment_sums(
        li, cols, k, [&](int64_t j) { return rfa2[j]; }, bins, di);
    for (int q = 0; q < k; ++q) ci[q] = di[q] > 0.0 ? ci[q] / di[q] : 0.0;
  }

  const ScaleProblem<T>& p_;
  int64_t block_ = 0;
  int64_t chunks_ = 0;
  int kmax_ = 1;
  std::vector<int64_t> off_;
  std::vector<T> d_, g_;
  std::vector<double> c_, den_, part_, sum_, inva_, inva2_, fa_, fa2_;
};

}  // namespace

template <typename T>
double scale_loss_and_grad(const ScaleProblem<T>& p, std::span<const double> log_alpha,
                           std::vector<double>* grad, RowGroup* group) {
  ScaleObjective<T> objective(p);
  WholeRows all(p.rows);
  return objective.eval(log_alpha, grad, group != nullptr ? *group : all);
}

template double scale_loss_and_grad<float>(const ScaleProblem<float>&, std::span<const double>,
                                           std::vector<double>*, RowGroup*);
template double scale_loss_and_grad<double>(const ScaleProblem<double>&, std::span<const double>,
                                            std::vector<double>*, RowGroup*);

LutLayer scaled_kmeans(const Tensor& w, const Tensor& h, ImportanceView f,
                       std::span<const uint8_t> bits, const ScaleTrainingOptions& options,
                       ScaleTrainingReport* report, RowGroup* group) {
  using clock = std::chrono::steady_clock;
  WholeRows whole(w.dim(0));
  RowGroup& rows_group = group != nullptr ? *group : whole;
  const int64_t rows = w.dim(0), cols = w.dim(1);
  if (w.ndim() != 2 || h.ndim() != 2 || h.dim(0) != cols || h.dim(1) != cols ||
      static_cast<int64_t>(bits.size()) != rows)
    fail(ErrorKind::kInternal, "scaled K-means: W {}, H {} and {} row bit-widths do not match",
         w.shape_string(), h.shape_string(), bits.size());
  std::vector<int> k(rows);
  std::vector<uint8_t> grid(rows, 0);
  for (int64_t i = 0; i < rows; ++i) {
    const int b = choice_width(bits[i]);
    if (b < 1 || b > 8) fail(ErrorKind::kInternal, "scaled K-means: row {} has {} bits", i, b);
    k[i] = 1 << b;
    grid[i] = choice_is_grid(bits[i]) ? 1 : 0;
  }
  ScaleTrainingReport rep;

  auto t0 = clock::now();
  std::vector<float> alpha(cols, 1.0f);
  Grouping unscaled = group_rows(w, f, k, grid, alpha, options.solver, options.row_kmeans);
  rep.kmeans_s += seconds_since(t0);
  rep.error_unscaled = grouping_error(w, h, unscaled, alpha, rows_group);

  Grouping chosen;
  if (options.train && options.steps > 0) {
    t0 = clock::now();
    const ScaleProblem<float> prob{rows,    cols, w.data(), h.data(), f, unscaled.labels.data(),
                                   k.data()};
    std::optional<ScaleObjective<float>> objective;
    ScaleObjectiveFn mine;
    if (options.objective_maker)
      mine = options.objective_maker(prob);
    else
      objective.emplace(prob);
    std::vector<double> partial(static_cast<size_t>(cols + 1)), sum(partial.size());
    const auto eval = [&](std::span<const double> theta, std::vector<double>* grad) {
      if (objective) return objective->eval(theta, grad, rows_group);
      std::vector<double> g;
      partial[cols] = mine(theta, grad != nullptr ? &g : nullptr);
      if (grad != nullptr) {
        if (static_cast<int64_t>(g.size()) != cols)
          fail(ErrorKind::kInternal, "scale objective: gradient of {} for {} columns", g.size(),
               cols);
        std::copy(g.begin(), g.end(), partial.begin());
      }
      if (options.objective_sums_group)
        sum = partial;
      else
        rows_group.ordered_sum(partial.data(), 1, cols + 1, sum.data());
      if (grad != nullptr) grad->assign(sum.begin(), sum.begin() + cols);
      return sum[cols];
    };
    std::vector<double> theta(cols, 0.0), m(cols, 0.0), v(cols, 0.0), grad;
    constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;
    for (int step = 0; step < options.steps; ++step) {
      const double loss = eval(theta, &grad);
      if (step == 0) rep.loss_first = loss;
      const double lr = options.lr() * std::pow(options.lr_decay, step / options.lr_decay_every());
      const double c1 = 1.0 - std::pow(kBeta1, step + 1), c2 = 1.0 - std::pow(kBeta2, step + 1);
      for (int64_t j = 0; j < cols; ++j) {
        m[j] = kBeta1 * m[j] + (1 - kBeta1) * grad[j];
        v[j] = kBeta2 * v[j] + (1 - kBeta2) * grad[j] * grad[j];
        theta[j] -= lr * (m[j] / c1) / (std::sqrt(v[j] / c2) + kEps);
      }
    }
    rep.loss_last = eval(theta, nullptr);
    for (int64_t j = 0; j < cols; ++j) alpha[j] = round_half(std::exp(theta[j]));
    rep.training_s += seconds_since(t0);

    t0 = clock::now();
    chosen = group_rows(w, f, k, grid, alpha, options.solver, options.row_kmeans);
    rep.kmeans_s += seconds_since(t0);
    rep.error_trained = grouping_error(w, h, chosen, alpha, rows_group);
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
    refine_luts_full_hessian(w, h, refined.labels, alpha, refined.lut, grid,
                             options.refine_systems);
    const double e = grouping_error(w, h, refined, alpha, rows_group);
    if (e < rep.error_final) {
      rep.error_final = e;
      chosen = std::move(refined);
    }
    rep.refine_s = seconds_since(t0);
  }

  LutLayer out;
  out.rows = rows;
  out.cols = cols;
  out.bits.resize(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) out.bits[i] = static_cast<uint8_t>(choice_width(bits[i]));
  if (std::any_of(grid.begin(), grid.end(), [](uint8_t g) { return g != 0; }))
    out.grid_rows = std::move(grid);
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
