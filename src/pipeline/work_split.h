#pragma once
// Which rank quantizes which linear of a decoder layer: longest-processing-time-first over the
// ranks, by a cost estimate, ties broken by index, so every rank computes the same plan.
#include <cstdint>
#include <vector>

namespace skim::pipeline {

// owner[k] = the rank that processes task k of the given costs.
std::vector<int> assign_by_cost(const std::vector<double>& costs, int ranks);

}  // namespace skim::pipeline
