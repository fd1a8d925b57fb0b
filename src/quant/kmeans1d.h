#pragma once
// Weighted 1-D K-means of one row: minimise sum_j f_j (w_j - c_{l_j})^2 over K centroids and the
// labels. In 1-D the optimal clusters are contiguous runs of the sorted values, so everything
// works on the sorted row with prefix sums of f, f w, f w^2 (in double). All solvers are
// deterministic: ties in the sort are broken by index, no randomness anywhere.
#include <cstdint>
#include <span>
#include <vector>

namespace skim::quant {

enum class KMeansSolver {
  kLloyd,       // Lloyd on the sorted row, O(K log n) per iteration, started from the exact DP
                // over a coarse grid of split points (the default)
  kExact,       // dynamic programming, O(K n log n) with the monotone-split divide and conquer
  kExactNaive,  // dynamic programming, O(K n^2); only for tests
};

struct KMeans1dResult {
  std::vector<float> centroids;  // [k], ascending; a cluster with no member repeats a neighbour
  std::vector<uint8_t> labels;   // [n], index into centroids
  double objective = 0.0;        // sum_j f_j (w_j - c_{l_j})^2 in double for these centroids
};

// Solves one row. k in [1, 256]; f >= 0 (an all-zero f falls back to uniform weights).
KMeans1dResult kmeans1d(std::span<const float> w, std::span<const float> f, int k,
                        KMeansSolver solver = KMeansSolver::kLloyd);

// The same row at several cluster counts, sorting it once (the error tables need 1..4 bits).
std::vector<KMeans1dResult> kmeans1d_levels(std::span<const float> w, std::span<const float> f,
                                            std::span<const int> ks,
                                            KMeansSolver solver = KMeansSolver::kLloyd);

// The objective of given centroids with each value assigned to its nearest centroid
// (what a decoder of the LUT would see), in double.
double kmeans1d_objective(std::span<const float> w, std::span<const float> f,
                          std::span<const float> centroids, std::span<const uint8_t> labels);

}  // namespace skim::quant
