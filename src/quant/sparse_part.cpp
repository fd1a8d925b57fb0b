#include "src/quant/sparse_part.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "src/core/error.h"
#include "src/core/half.h"

namespace skim::quant {

std::vector<int64_t> reserve_menu(int64_t cols) {
  std::vector<int64_t> menu;
  for (const int64_t per : {512, 128, 32}) {
    const int64_t c = std::min(cols, std::max<int64_t>(1, (cols + per / 2) / per));
    if (menu.empty() || c > menu.back()) menu.push_back(c);
  }
  return menu;
}

OutlierSplit split_outliers(const Tensor& w, std::span<const float> f, int64_t per_row) {
  if (per_row < 0 || per_row > w.dim(1))
    fail(ErrorKind::kInternal, "outliers: {} per row of {} columns", per_row, w.dim(1));
  const std::vector<int64_t> counts(static_cast<size_t>(w.dim(0)), per_row);
  return split_outliers(w, f, counts);
}

OutlierSplit split_outliers(const Tensor& w, std::span<const float> f,
                            std::span<const int64_t> counts) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  if (static_cast<int64_t>(f.size()) != cols || static_cast<int64_t>(counts.size()) != rows)
    fail(ErrorKind::kInternal, "outliers: {} counts for {} rows, {} weights for {} columns",
         counts.size(), rows, f.size(), cols);
  OutlierSplit out{w, {}};
  SparsePart& s = out.positions;
  s.row_ptr.assign(static_cast<size_t>(rows + 1), 0);
  for (int64_t i = 0; i < rows; ++i) {
    if (counts[i] < 0 || counts[i] > cols)
      fail(ErrorKind::kInternal, "outliers: {} in row {} of {} columns", counts[i], i, cols);
    s.row_ptr[i + 1] = s.row_ptr[i] + counts[i];
  }
  s.cols.resize(static_cast<size_t>(s.row_ptr.back()));
  s.values.assign(s.cols.size(), 0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t per_row = counts[i];
    if (per_row == 0) continue;
    const auto row = w.row(i);
    double fw = 0, fs = 0;
    for (int64_t j = 0; j < cols; ++j) {
      fw += double{f[j]} * row[j];
      fs += f[j];
    }
    const float mean = fs > 0 ? static_cast<float>(fw / fs) : 0.0f;
    std::vector<int32_t> order(static_cast<size_t>(cols));
    std::iota(order.begin(), order.end(), 0);
    const auto score = [&](int32_t j) {
      const double d = double{row[j]} - mean;
      return double{f[j]} * d * d;
    };
    std::partial_sort(order.begin(), order.begin() + per_row, order.end(),
                      [&](int32_t a, int32_t b) {
                        const double sa = score(a), sb = score(b);
                        return sa != sb ? sa > sb : a < b;
                      });
    std::sort(order.begin(), order.begin() + per_row);
    float* dense = out.dense.data() + i * cols;
    for (int64_t k = 0; k < per_row; ++k) {
      s.cols[static_cast<size_t>(s.row_ptr[i] + k)] = order[static_cast<size_t>(k)];
      dense[order[static_cast<size_t>(k)]] = mean;
    }
  }
  return out;
}

void set_corrections(SparsePart& s, const Tensor& w, const Tensor& lut_part) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  validate(s, rows, cols, "sparse part");
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = s.row_ptr[i]; k < s.row_ptr[i + 1]; ++k) {
      const int64_t j = s.cols[k];
      s.values[k] = float_to_half(w.at(i, j) - lut_part.at(i, j));
    }
}

void add_to_dense(const SparsePart& s, int64_t cols, float* w) {
  if (s.empty()) return;
  const int64_t rows = static_cast<int64_t>(s.row_ptr.size()) - 1;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = s.row_ptr[i]; k < s.row_ptr[i + 1]; ++k)
      w[i * cols + s.cols[k]] += half_to_float(s.values[k]);
}

void gemv_add(const SparsePart& s, const float* x, float* y) {
  gemm_add(s, static_cast<int64_t>(s.row_ptr.size()) - 1, 0, x, 1, y);
}

void gemm_add(const SparsePart& s, int64_t rows, int64_t cols, const float* x, int64_t batch,
              float* y) {
  if (s.empty()) return;
#pragma omp parallel for schedule(static) if (batch * s.nnz() >= (int64_t{1} << 16))
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < rows; ++i) {
      float acc = 0.0f;
      for (int64_t k = s.row_ptr[i]; k < s.row_ptr[i + 1]; ++k)
        acc += half_to_float(s.values[k]) * x[b * cols + s.cols[k]];
      y[b * rows + i] += acc;
    }
}

SparsePart concat_rows(std::span<const SparsePart> blocks) {
  SparsePart out;
  if (blocks.empty() || blocks.front().empty()) {
    for (const auto& b : blocks)
      if (!b.empty()) fail(ErrorKind::kBadInput, "row blocks: some have a sparse part, some not");
    return out;
  }
  out.row_ptr.push_back(0);
  for (const auto& b : blocks) {
    if (b.empty()) fail(ErrorKind::kBadInput, "row blocks: some have a sparse part, some not");
    const int64_t base = out.nnz();
    for (size_t i = 1; i < b.row_ptr.size(); ++i) out.row_ptr.push_back(base + b.row_ptr[i]);
    out.cols.insert(out.cols.end(), b.cols.begin(), b.cols.end());
    out.values.insert(out.values.end(), b.values.begin(), b.values.end());
  }
  return out;
}

}  // namespace skim::quant
