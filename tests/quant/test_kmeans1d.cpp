// Weighted 1-D K-means: the exact DP against brute force, the fast DP against the naive DP, and
// the Lloyd solver against the exact optimum on heavy-tailed rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "src/quant/kmeans1d.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

using testing::SyntheticRng;

// Best objective over every labeling (centroids = weighted means of their members).
double brute_force_labelings(const std::vector<float>& w, const std::vector<float>& f, int k) {
  const size_t n = w.size();
  std::vector<int> lab(n, 0);
  double best = std::numeric_limits<double>::infinity();
  while (true) {
    std::vector<double> s0(k, 0.0), s1(k, 0.0);
    for (size_t j = 0; j < n; ++j) {
      s0[lab[j]] += f[j];
      s1[lab[j]] += static_cast<double>(f[j]) * w[j];
    }
    double obj = 0.0;
    for (size_t j = 0; j < n; ++j) {
      const double c = s0[lab[j]] > 0 ? s1[lab[j]] / s0[lab[j]] : 0.0;
      obj += f[j] * (w[j] - c) * (w[j] - c);
    }
    best = std::min(best, obj);
    size_t p = 0;
    while (p < n && ++lab[p] == k) lab[p++] = 0;
    if (p == n) break;
  }
  return best;
}

// Best objective over every split of the sorted row into at most k contiguous runs.
double brute_force_contiguous(std::vector<float> w, std::vector<float> f, int k) {
  std::vector<size_t> idx(w.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return w[a] < w[b]; });
  std::vector<double> v, g;
  for (size_t i : idx) {
    v.push_back(w[i]);
    g.push_back(f[i]);
  }
  const size_t n = v.size();
  auto run_cost = [&](size_t a, size_t b) {
    double s0 = 0, s1 = 0;
    for (size_t t = a; t < b; ++t) s0 += g[t], s1 += g[t] * v[t];
    const double c = s0 > 0 ? s1 / s0 : 0.0;
    double s = 0;
    for (size_t t = a; t < b; ++t) s += g[t] * (v[t] - c) * (v[t] - c);
    return s;
  };
  double best = std::numeric_limits<double>::infinity();
  // Each of the n-1 gaps is a cut or not; at most k-1 cuts.
  for (uint32_t mask = 0; mask < (1u << (n - 1)); ++mask) {
    if (std::popcount(mask) > k - 1) continue;
    double obj = 0;
    size_t start = 0;
    for (size_t t = 1; t <= n; ++t) {
      if (t == n || (mask >> (t - 1) & 1u)) {
        obj += run_cost(start, t);
        start = t;
      }
    }
    best = std::min(best, obj);
  }
  return best;
}

std::vector<float> random_row(SyntheticRng& rng, size_t n, bool heavy) {
  std::vector<float> w(n);
  for (auto& x : w) x = static_cast<float>(heavy ? rng.student_t(3) : rng.normal());
  return w;
}

std::vector<float> random_weights(SyntheticRng& rng, size_t n) {
  std::vector<float> f(n);
  for (auto& x : f) x = static_cast<float>(std::exp(1.5 * rng.normal()));
  return f;
}

TEST(KMeans1d, ExactMatchesBruteForceOverAllLabelings) {
  SyntheticRng rng(11);
  for (int trial = 0; trial < 40; ++trial) {
    const size_t n = 3 + trial % 6;  // 3..8
    const int k = 2 + trial % 3;     // 2..4
    const auto w = random_row(rng, n, trial % 2 == 0);
    const auto f = random_weights(rng, n);
    const double brute = brute_force_labelings(w, f, k);
    const auto res = kmeans1d(w, f, k, KMeansSolver::kExact);
    EXPECT_NEAR(res.objective, brute, 1e-9 * (1.0 + brute)) << "n=" << n << " k=" << k;
  }
}

TEST(KMeans1d, ExactMatchesBruteForceOverContiguousPartitions) {
  SyntheticRng rng(12);
  for (int trial = 0; trial < 60; ++trial) {
    const size_t n = 4 + trial % 7;  // 4..10
    const int k = 1 + trial % 4;     // 1..4
    auto w = random_row(rng, n, true);
    if (trial % 5 == 0) w[1] = w[0];  // ties
    auto f = random_weights(rng, n);
    if (trial % 7 == 0) f[2] = 0.0f;  // a weight of zero
    const double brute = brute_force_contiguous(w, f, k);
    for (auto solver : {KMeansSolver::kExact, KMeansSolver::kExactNaive}) {
      const auto res = kmeans1d(w, f, k, solver);
      EXPECT_NEAR(res.objective, brute, 1e-9 * (1.0 + brute)) << "n=" << n << " k=" << k;
    }
  }
}

TEST(KMeans1d, MonotoneDpMatchesNaiveDp) {
  SyntheticRng rng(13);
  for (int trial = 0; trial < 24; ++trial) {
    const size_t n = 150 + 17 * trial;
    const int k = 2 << (trial % 4);  // 2, 4, 8, 16
    auto w = random_row(rng, n, trial % 2 == 0);
    for (size_t j = 0; j + 1 < n; j += 13) w[j + 1] = w[j];  // duplicates
    const auto f = random_weights(rng, n);
    const auto fast = kmeans1d(w, f, k, KMeansSolver::kExact);
    const auto naive = kmeans1d(w, f, k, KMeansSolver::kExactNaive);
    EXPECT_NEAR(fast.objective, naive.objective, 1e-10 * naive.objective) << n << " " << k;
  }
}

TEST(KMeans1d, LloydWithinHalfPercentOfExactOnHeavyTailedRows) {
  SyntheticRng rng(14);
  double worst = 0.0;
  for (int k : {2, 4, 8, 16}) {
    for (int trial = 0; trial < 6; ++trial) {
      std::vector<float> w(4096);
      for (auto& x : w) x = static_cast<float>(0.02 * rng.student_t(trial % 2 == 0 ? 3 : 5));
      // Importance like H_jj: log-normal channel scales with a few outliers, or uniform.
      std::vector<float> f(4096, 1.0f);
      if (trial >= 2) {
        f = random_weights(rng, 4096);
        for (int o = 0; o < 16; ++o) f[rng.next() % 4096] *= 900.0f;
      }
      const auto exact = kmeans1d(w, f, k, KMeansSolver::kExact);
      const auto lloyd = kmeans1d(w, f, k, KMeansSolver::kLloyd);
      const double gap = lloyd.objective / exact.objective - 1.0;
      EXPECT_GE(gap, -1e-9);
      EXPECT_LT(gap, 0.005) << "k=" << k << " trial=" << trial;
      worst = std::max(worst, gap);
    }
  }
  std::printf("worst Lloyd gap to the exact optimum: %.4f%%\n", 100.0 * worst);
}

TEST(KMeans1d, LloydLabelsAreNearestCentroidAndDeterministic) {
  SyntheticRng rng(15);
  const auto w = random_row(rng, 1000, true);
  const auto f = random_weights(rng, 1000);
  const auto a = kmeans1d(w, f, 8);
  const auto b = kmeans1d(w, f, 8);
  EXPECT_EQ(a.centroids, b.centroids);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_TRUE(std::is_sorted(a.centroids.begin(), a.centroids.end()));
  for (size_t j = 0; j < w.size(); ++j) {
    const float d = std::fabs(w[j] - a.centroids[a.labels[j]]);
    for (float c : a.centroids) EXPECT_LE(d, std::fabs(w[j] - c) + 1e-6f);
  }
}

TEST(KMeans1d, MoreClustersThanValuesAndZeroWeights) {
  const std::vector<float> w{0.5f, -1.0f, 2.0f};
  const std::vector<float> zero(3, 0.0f);
  for (auto solver : {KMeansSolver::kLloyd, KMeansSolver::kExact}) {
    const auto res = kmeans1d(w, zero, 16, solver);  // all-zero f: uniform weights
    ASSERT_EQ(res.centroids.size(), 16u);
    EXPECT_DOUBLE_EQ(res.objective, 0.0);
    for (size_t j = 0; j < w.size(); ++j) EXPECT_EQ(res.centroids[res.labels[j]], w[j]);
  }
}

}  // namespace
}  // namespace skim::quant
