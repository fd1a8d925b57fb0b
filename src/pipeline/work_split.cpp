#include "src/pipeline/work_split.h"

#include <algorithm>
#include <numeric>

#include "src/core/error.h"

namespace skim::pipeline {

std::vector<int> assign_by_cost(const std::vector<double>& costs, int ranks) {
  SKIM_ASSERT(ranks > 0);
  std::vector<size_t> order(costs.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return costs[a] > costs[b]; });
  std::vector<double> load(static_cast<size_t>(ranks), 0.0);
  std::vector<int> owner(costs.size(), 0);
  for (size_t k : order) {
    const auto least = std::min_element(load.begin(), load.end());  // first of equals: lowest rank
    owner[k] = static_cast<int>(least - load.begin());
    *least += costs[k];
  }
  return owner;
}

}  // namespace skim::pipeline
