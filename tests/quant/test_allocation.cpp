// Greedy bit allocation against exhaustive search, the budget invariant and the reported cost.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "src/core/error.h"
#include "src/quant/allocation.h"
#include "src/quant/lut_layer.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::quant {
namespace {

using testing::SyntheticRng;

ErrorTable random_table(SyntheticRng& rng, int64_t rows, int b_min, int b_max, bool convex) {
  ErrorTable t;
  t.rows = rows;
  t.b_min = b_min;
  t.b_max = b_max;
  t.e.resize(static_cast<size_t>(rows * t.levels()));
  for (int64_t i = 0; i < rows; ++i) {
    double e = std::exp(2.0 * rng.normal());
    for (int b = b_min; b <= b_max; ++b) {
      t.at(i, b) = e;
      // Convex-ish: error shrinks by a factor near 4 per bit; otherwise arbitrary drops, even
      // no drop or a rise.
      e *= convex ? 0.25 * std::exp(0.2 * rng.normal()) : std::exp(0.8 * rng.normal() - 0.7);
    }
  }
  return t;
}

struct Best {
  double error = std::numeric_limits<double>::infinity();
  int64_t cost = 0;
};

// Every assignment of levels to rows whose cost fits the budget.
Best exhaustive(const ErrorTable& t, int64_t cols, bool has_alpha, int64_t budget,
                LutEntries entries = LutEntries::kF16) {
  Best best;
  const int levels = t.levels();
  std::vector<int> b(static_cast<size_t>(t.rows), t.b_min);
  while (true) {
    int64_t cost = lut_layer_overhead_bits(cols, has_alpha);
    double err = 0.0;
    for (int64_t i = 0; i < t.rows; ++i) {
      cost += lut_row_cost_bits(cols, b[i], entries);
      err += t.at(i, b[i]);
    }
    if (cost <= budget && err < best.error) best = {err, cost};
    int64_t p = 0;
    while (p < t.rows && ++b[p] > t.b_max) b[p++] = t.b_min;
    if (p == t.rows) break;
  }
  (void)levels;
  return best;
}

int64_t recomputed_cost(const BitAllocation& a, int64_t cols, bool has_alpha,
                        LutEntries entries = LutEntries::kF16) {
  int64_t c = lut_layer_overhead_bits(cols, has_alpha);
  for (uint8_t b : a.bits) c += lut_row_cost_bits(cols, b, entries);
  return c;
}

TEST(Allocation, GreedyPrefixIsOptimalForTheBitsItSpends) {
  // The greedy prefix over convex hulls minimises error + lambda * cost for some lambda, so no
  // assignment with at most its cost has less error: checked by enumerating all 4^5 choices,
  // for both LUT storages (their different costs move the hull).
  SyntheticRng rng(21);
  const int64_t cols = 64;
  int checked = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const auto t = random_table(rng, trial % 2 ? 4 : 5, 1, 4, trial % 3 != 0);
    const LutEntries entries = trial % 4 < 2 ? LutEntries::kF16 : LutEntries::kQ8;
    for (double bits = 2.7; bits <= 8.5; bits += 0.23) {
      const int64_t weights = t.rows * cols;
      const int64_t budget = static_cast<int64_t>(std::floor(bits * weights));
      if (budget < 16 * cols + t.rows * lut_row_cost_bits(cols, 1, entries)) continue;
      const auto a = allocate_bits(t, cols, bits, true, {.fill_up = false, .entries = entries});
      EXPECT_EQ(a.cost_bits, recomputed_cost(a, cols, true, entries));
      const Best best = exhaustive(t, cols, true, a.cost_bits, entries);
      EXPECT_NEAR(a.error, best.error, 1e-12 * best.error) << "trial " << trial << " B " << bits;
      ++checked;
    }
  }
  EXPECT_GT(checked, 500);
}

// Every assignment of (width, LUT or grid) to rows whose cost fits the budget, q8 entries.
Best exhaustive_with_grid(const ErrorTable& t, int64_t cols, int64_t budget) {
  Best best;
  const int forms = 2 * t.levels();
  std::vector<int> f(static_cast<size_t>(t.rows), 0);  // form: level * 2 + grid
  while (true) {
    int64_t cost = lut_layer_overhead_bits(cols, true);
    double err = 0.0;
    for (int64_t i = 0; i < t.rows; ++i) {
      const int b = t.b_min + f[i] / 2;
      const bool grid = f[i] % 2 == 1;
      cost += lut_row_cost_bits(cols, b, LutEntries::kQ8, grid);
      err += grid ? t.e_grid[i * t.levels() + f[i] / 2] : t.at(i, b);
    }
    if (cost <= budget && err < best.error) best = {err, cost};
    int64_t p = 0;
    while (p < t.rows && ++f[p] >= forms) f[p++] = 0;
    if (p == t.rows) break;
  }
  return best;
}

TEST(Allocation, GreedyPrefixWithGridRowsIsOptimalForTheBitsItSpends) {
  // Grid rows cost less than LUT rows of the same width (no entries) and err more by a random
  // factor: the hull runs over both kinds, checked by enumerating all 8^4 choices.
  SyntheticRng rng(25);
  const int64_t cols = 48;
  int checked = 0, grid_chosen = 0;
  for (int trial = 0; trial < 40; ++trial) {
    auto t = random_table(rng, 4, 2, 5, trial % 3 != 0);
    t.e_grid.resize(t.e.size());
    for (size_t k = 0; k < t.e.size(); ++k) t.e_grid[k] = t.e[k] * std::exp(0.5 * rng.uniform());
    for (double bits = 3.3; bits <= 9.0; bits += 0.29) {
      const int64_t budget = static_cast<int64_t>(std::floor(bits * t.rows * cols));
      if (budget < 16 * cols + t.rows * lut_row_cost_bits(cols, 2, LutEntries::kQ8, true)) continue;
      const auto a =
          allocate_bits(t, cols, bits, true, {.fill_up = false, .entries = LutEntries::kQ8});
      int64_t cost = lut_layer_overhead_bits(cols, true);
      for (uint8_t c : a.bits) {
        cost += lut_row_cost_bits(cols, choice_width(c), LutEntries::kQ8, choice_is_grid(c));
        grid_chosen += choice_is_grid(c);
      }
      EXPECT_EQ(a.cost_bits, cost);
      const Best best = exhaustive_with_grid(t, cols, a.cost_bits);
      EXPECT_NEAR(a.error, best.error, 1e-12 * best.error) << "trial " << trial << " B " << bits;
      ++checked;
    }
  }
  EXPECT_GT(checked, 250);
  EXPECT_GT(grid_chosen, checked);  // the grid form is really in play
}

// Every assignment of (width, reserve level) to rows whose cost fits the budget, d8 entries.
Best exhaustive_with_reserved(const ErrorTable& t, int64_t cols, int64_t budget) {
  Best best;
  const int per_width = t.reserve_levels();
  const int forms = per_width * t.levels();
  std::vector<int> f(static_cast<size_t>(t.rows), 0);  // form: level * per_width + reserve level
  while (true) {
    int64_t cost = lut_layer_overhead_bits(cols, true);
    double err = 0.0;
    for (int64_t i = 0; i < t.rows; ++i) {
      const int b = t.b_min + f[i] / per_width, r = f[i] % per_width;
      cost += lut_row_cost_bits(cols, b, LutEntries::kD8) +
              (r == 0 ? 0 : t.reserve_counts[r - 1] * (16 + 16));
      err += r == 0 ? t.at(i, b) : t.e_reserved[r - 1][i * t.levels() + b - t.b_min];
    }
    if (cost <= budget && err < best.error) best = {err, cost};
    int64_t p = 0;
    while (p < t.rows && ++f[p] >= forms) f[p++] = 0;
    if (p == t.rows) break;
  }
  return best;
}

TEST(Allocation, GreedyPrefixWithReservedWeightsIsOptimalForTheBitsItSpends) {
  // Two counts of reserved weights per row, each lowering the row's error by a random factor at
  // every width: the hull runs over widths and counts, checked against all 12^4 choices.
  SyntheticRng rng(27);
  const int64_t cols = 64;
  int checked = 0, reserved_chosen = 0;
  for (int trial = 0; trial < 30; ++trial) {
    auto t = random_table(rng, 4, 1, 4, trial % 3 != 0);
    t.reserve_counts = {1, 4};
    for (int r = 0; r < 2; ++r) {
      t.e_reserved.emplace_back(t.e.size());
      for (size_t k = 0; k < t.e.size(); ++k)
        t.e_reserved[r][k] = t.e[k] * std::exp(-(r + 1) * 0.6 * rng.uniform());
    }
    for (double bits = 2.0; bits <= 7.0; bits += 0.23) {
      const int64_t budget = static_cast<int64_t>(std::floor(bits * t.rows * cols));
      if (budget < 16 * cols + t.rows * lut_row_cost_bits(cols, 1, LutEntries::kD8)) continue;
      const auto a =
          allocate_bits(t, cols, bits, true, {.fill_up = false, .entries = LutEntries::kD8});
      int64_t cost = lut_layer_overhead_bits(cols, true);
      for (uint8_t c : a.bits) {
        const int r = choice_reserve_level(c);
        cost += lut_row_cost_bits(cols, choice_width(c), LutEntries::kD8) +
                (r == 0 ? 0 : t.reserve_counts[r - 1] * 32);
        reserved_chosen += r > 0;
        EXPECT_FALSE(choice_is_grid(c));
      }
      EXPECT_EQ(a.cost_bits, cost);
      const Best best = exhaustive_with_reserved(t, cols, a.cost_bits);
      EXPECT_NEAR(a.error, best.error, 1e-12 * best.error) << "trial " << trial << " B " << bits;
      ++checked;
    }
  }
  EXPECT_GT(checked, 120);
  EXPECT_GT(2 * reserved_chosen, checked);  // the reserved forms are really in play
}

TEST(Allocation, FillUpStaysWithinBudgetAndNearTheOptimum) {
  SyntheticRng rng(22);
  const int64_t cols = 64;
  int cases = 0, optimal = 0;
  double worst = 0.0;
  for (int trial = 0; trial < 60; ++trial) {
    const auto t = random_table(rng, 4, 1, 4, trial % 3 != 0);
    for (double bits = 5.7; bits <= 11.0; bits += 0.17) {
      const auto a = allocate_bits(t, cols, bits, true);
      const auto prefix = allocate_bits(t, cols, bits, true, {.fill_up = false});
      const int64_t budget = static_cast<int64_t>(std::floor(bits * 4 * cols));
      const Best best = exhaustive(t, cols, true, budget);
      EXPECT_LE(a.cost_bits, budget);
      EXPECT_LE(a.error, prefix.error * (1 + 1e-12));
      EXPECT_GE(a.error, best.error * (1 - 1e-12));
      worst = std::max(worst, a.error / best.error - 1.0);
      optimal += a.error <= best.error * (1 + 1e-12);
      ++cases;
    }
  }
  std::printf("fill-up greedy optimal in %d of %d cases; worst excess %.3f%%\n", optimal, cases,
              100.0 * worst);
  EXPECT_GT(optimal, cases * 8 / 10);
}

TEST(Allocation, HullSkipsAStallingLevel) {
  // Row 0 gains almost nothing from 1 to 2 bits but a lot at 3 bits; a greedy on raw
  // neighbours would give the bits to row 1. Budget: exactly row 0 at 3 bits, row 1 at 1 bit.
  ErrorTable t;
  t.rows = 2;
  t.b_min = 1;
  t.b_max = 4;
  t.e = {10.0, 9.99, 0.1, 0.05, 5.0, 3.0, 2.5, 2.2};
  const int64_t cols = 64;
  const int64_t budget =
      lut_row_cost_bits(cols, 3, LutEntries::kF16) + lut_row_cost_bits(cols, 1, LutEntries::kF16);
  const auto a = allocate_bits(t, cols, static_cast<double>(budget) / (2 * cols), false);
  EXPECT_EQ(a.bits[0], 3);
  EXPECT_EQ(a.bits[1], 1);
  EXPECT_NEAR(a.error, exhaustive(t, cols, false, budget).error, 1e-12);
}

TEST(Allocation, NeverExceedsBudgetAndReportsExactCost) {
  SyntheticRng rng(23);
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t rows = 1 + static_cast<int64_t>(rng.next() % 200);
    const int64_t cols = 8 + static_cast<int64_t>(rng.next() % 3000);
    const bool alpha = trial % 2 == 0;
    const LutEntries entries = trial % 3 == 0 ? LutEntries::kQ8 : LutEntries::kF16;
    const auto t = random_table(rng, rows, 1, 4, trial % 2 == 0);
    const double min_bits = static_cast<double>(rows * lut_row_cost_bits(cols, 1, entries) +
                                                lut_layer_overhead_bits(cols, alpha)) /
                            static_cast<double>(rows * cols);
    const double bits = min_bits + 4.0 * rng.uniform();
    const auto a = allocate_bits(t, cols, bits, alpha, {.entries = entries});
    const int64_t budget = static_cast<int64_t>(std::floor(bits * rows * cols));
    EXPECT_LE(a.cost_bits, budget);
    EXPECT_EQ(a.cost_bits, recomputed_cost(a, cols, alpha, entries));
    EXPECT_DOUBLE_EQ(a.average_bits, static_cast<double>(a.cost_bits) / (rows * cols));
    EXPECT_LE(a.average_bits, bits);
    double err = 0.0;
    for (int64_t i = 0; i < rows; ++i) err += t.at(i, a.bits[i]);
    EXPECT_NEAR(a.error, err, 1e-9 * err);
  }
}

TEST(Allocation, GlobalBudgetOverLayersOfDifferentWidths) {
  SyntheticRng rng(24);
  for (int trial = 0; trial < 50; ++trial) {
    const auto t0 = random_table(rng, 40, 1, 4, true);
    const auto t1 = random_table(rng, 25, 1, 4, false);
    const auto t2 = random_table(rng, 60, 2, 4, true);
    const std::vector<LayerErrors> layers{
        {&t0, 300, true, 1.0}, {&t1, 1100, true, 0.3}, {&t2, 77, false, 5.0}};
    const double bits = 2.3 + 1.5 * rng.uniform();
    const auto g = allocate_bits_global(layers, bits);
    EXPECT_EQ(g.weights, 40 * 300 + 25 * 1100 + 60 * 77);
    EXPECT_LE(g.cost_bits, g.budget_bits);
    EXPECT_EQ(g.budget_bits, static_cast<int64_t>(std::floor(bits * g.weights)));
    int64_t total = 0;
    for (size_t l = 0; l < layers.size(); ++l) {
      const int64_t c = recomputed_cost(g.layers[l], layers[l].cols, layers[l].has_alpha);
      EXPECT_EQ(g.layers[l].cost_bits, c);
      total += c;
      for (uint8_t b : g.layers[l].bits) {
        EXPECT_GE(b, layers[l].table->b_min);
        EXPECT_LE(b, layers[l].table->b_max);
      }
    }
    EXPECT_EQ(total, g.cost_bits);
  }
  // One layer in global mode is layer mode.
  const auto t = random_table(rng, 30, 1, 4, true);
  const std::vector<LayerErrors> one{{&t, 128, true, 1.0}};
  EXPECT_EQ(allocate_bits_global(one, 3.1).layers[0].bits, allocate_bits(t, 128, 3.1, true).bits);
}

// Every assignment of levels to the rows of every layer whose total cost fits the budget; errors
// scaled per layer.
Best exhaustive_global(const std::vector<LayerErrors>& layers, int64_t budget) {
  std::vector<std::pair<size_t, int64_t>> rows;  // (layer, row)
  for (size_t l = 0; l < layers.size(); ++l)
    for (int64_t i = 0; i < layers[l].table->rows; ++i) rows.emplace_back(l, i);
  std::vector<int> b;
  for (const auto& [l, i] : rows) b.push_back(layers[l].table->b_min);
  Best best;
  while (true) {
    int64_t cost = 0;
    double err = 0.0;
    for (const auto& le : layers) cost += lut_layer_overhead_bits(le.cols, le.has_alpha);
    for (size_t k = 0; k < rows.size(); ++k) {
      const LayerErrors& le = layers[rows[k].first];
      cost += lut_row_cost_bits(le.cols, b[k], LutEntries::kF16);
      err += le.error_scale * le.table->at(rows[k].second, b[k]);
    }
    if (cost <= budget && err < best.error) best = {err, cost};
    size_t p = 0;
    while (p < rows.size() && ++b[p] > layers[rows[p].first].table->b_max)
      b[p] = layers[rows[p].first].table->b_min, ++p;
    if (p == rows.size()) break;
  }
  return best;
}

TEST(Allocation, GlobalGreedyPrefixIsOptimalForTheBitsItSpends) {
  // Three layers of different widths, bit ranges and error scales: the greedy over all their
  // rows against every one of the 4^2 * 3^2 * 4^2 assignments.
  SyntheticRng rng(26);
  int checked = 0;
  for (int trial = 0; trial < 30; ++trial) {
    const auto t0 = random_table(rng, 2, 1, 4, trial % 2 == 0);
    const auto t1 = random_table(rng, 2, 2, 4, true);
    const auto t2 = random_table(rng, 2, 1, 4, trial % 3 != 0);
    const std::vector<LayerErrors> layers{
        {&t0, 512, false, 1.0}, {&t1, 1024, false, 0.2}, {&t2, 300, true, 3.0}};
    for (double bits = 1.5; bits <= 9.0; bits += 0.13) {
      GlobalAllocation g;
      try {
        g = allocate_bits_global(layers, bits, {.fill_up = false});
      } catch (const Error&) {
        continue;  // below the minimum
      }
      double err = 0.0;
      for (const auto& a : g.layers) err += a.error;
      const Best best = exhaustive_global(layers, g.cost_bits);
      EXPECT_NEAR(err, best.error, 1e-12 * best.error) << "trial " << trial << " B " << bits;
      ++checked;
    }
  }
  EXPECT_GT(checked, 200);
}

TEST(Allocation, BudgetBelowMinimumIsAUsageError) {
  SyntheticRng rng(25);
  const auto t = random_table(rng, 10, 2, 4, true);
  try {
    allocate_bits(t, 64, 2.0, true);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
  }
}

}  // namespace
}  // namespace skim::quant
