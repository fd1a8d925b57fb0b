// The row split of a linear over ranks, against a naive reference; the single-process group.
#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "src/core/error.h"

#include "src/quant/row_group.h"

namespace skim::quant {
namespace {

TEST(RowBlock, StartsAtTheUnitBoundaryNearestAnEvenShare) {
  for (int64_t rows : {0, 1, 95, 96, 97, 192, 300, 512, 576, 1024, 1536, 2816, 28672}) {
    for (int ranks : {1, 2, 3, 4, 7, 8, 64}) {
      // Naive reference: scan every unit boundary for the one nearest to r * rows / ranks,
      // comparing exactly in integers (distance times ranks), the lower on a tie.
      const auto reference_start = [&](int r) {
        if (r == ranks) return rows;
        int64_t best = 0;
        for (int64_t m = 0; m <= rows + kRowUnit; m += kRowUnit) {
          const int64_t d = std::abs(m * ranks - r * rows), db = std::abs(best * ranks - r * rows);
          if (d < db) best = m;
        }
        return std::min(best, rows);
      };
      int64_t covered = 0;
      for (int r = 0; r < ranks; ++r) {
        const RowBlock b = row_block(rows, r, ranks);
        EXPECT_EQ(b.first, reference_start(r)) << rows << " rows, rank " << r << " of " << ranks;
        EXPECT_EQ(b.first + b.count, reference_start(r + 1)) << rows << " rows, rank " << r;
        EXPECT_EQ(b.total, rows);
        EXPECT_TRUE(b.count == 0 || b.first % kRowUnit == 0) << b.first;
        EXPECT_EQ(b.first, covered);  // contiguous, in rank order
        covered += b.count;
      }
      EXPECT_EQ(covered, rows);
    }
  }
}

TEST(RowBlock, RefusesABadRank) {
  EXPECT_THROW(row_block(96, 2, 2), Error);
  EXPECT_THROW(row_block(96, 0, 0), Error);
  EXPECT_THROW(row_block(-1, 0, 1), Error);
}

TEST(WholeRows, OrderedSumAddsPartialsInOrderFromZero) {
  WholeRows g(3);
  // 1e16 + 1 - 1e16 depends on the order: left to right gives 0.
  const std::vector<double> p = {1e16, 1.0, 1.0, 2.0, -1e16, 3.0};
  double out[2] = {-1, -1};
  g.ordered_sum(p.data(), 3, 2, out);
  EXPECT_EQ(out[0], (1e16 + 1.0) + -1e16);
  EXPECT_EQ(out[1], (1.0 + 2.0) + 3.0);
  EXPECT_EQ(g.all_gather(p), p);
  EXPECT_EQ(sum_over_rows(g, std::vector<double>{1e16, 1.0, -1e16}), 0.0);
}

}  // namespace
}  // namespace skim::quant
