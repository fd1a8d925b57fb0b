#include "src/quant/row_group.h"

#include <algorithm>

#include "src/core/error.h"

namespace skim::quant {

RowBlock row_block(int64_t rows, int rank, int ranks) {
  if (rows < 0 || ranks < 1 || rank < 0 || rank >= ranks)
    fail(ErrorKind::kInternal, "row_block: {} rows, rank {} of {}", rows, rank, ranks);
  // Rank r starts at the unit boundary nearest to r * rows / ranks (ties to the lower one).
  const auto start = [&](int64_t r) {
    if (r >= ranks) return rows;
    const int64_t twice = 2 * r * rows;  // 2 * ideal start * ranks
    const int64_t unit = (twice + ranks * kRowUnit - 1) / (2 * ranks * kRowUnit);
    return std::min(rows, unit * kRowUnit);
  };
  RowBlock b;
  b.total = rows;
  b.first = start(rank);
  b.count = start(rank + 1) - b.first;
  return b;
}

void WholeRows::ordered_sum(const double* partials, int64_t groups, int64_t width, double* out) {
  std::fill(out, out + width, 0.0);
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t i = 0; i < width; ++i) out[i] += partials[g * width + i];
}

std::vector<double> WholeRows::all_gather(std::span<const double> mine) {
  return {mine.begin(), mine.end()};
}

double sum_over_rows(RowGroup& group, std::span<const double> per_row) {
  double s = 0.0;
  group.ordered_sum(per_row.data(), static_cast<int64_t>(per_row.size()), 1, &s);
  return s;
}

}  // namespace skim::quant
