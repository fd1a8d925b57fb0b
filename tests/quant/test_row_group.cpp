// The row split of a linear over ranks, against a naive reference; the single-process group.
#include <gtest/gtest.h>

#include <vector>

#include "src/core/error.h"

#include "src/quant/row_group.h"

namespace skim::quant {
namespace {

TEST(RowBlock, WholeUnitsInRankOrderCoveringEveryRowOnce) {
  for (int64_t rows : {0, 1, 95, 96, 97, 192, 300, 576, 1536, 28672}) {
    for (int ranks : {1, 2, 3, 4, 7, 8, 64}) {
      // Naive reference: deal the units out one by one to the rank with the fewest so far,
      // lowest rank first, then number them in rank order.
      const int64_t units = (rows + kRowUnit - 1) / kRowUnit;
      std::vector<int64_t> per_rank(static_cast<size_t>(ranks), 0);
      for (int64_t u = 0; u < units; ++u) ++per_rank[static_cast<size_t>(u % ranks)];
      int64_t next = 0;
      for (int r = 0; r < ranks; ++r) {
        const RowBlock b = row_block(rows, r, ranks);
        const int64_t first = std::min(rows, next * kRowUnit);
        const int64_t end = std::min(rows, (next + per_rank[static_cast<size_t>(r)]) * kRowUnit);
        EXPECT_EQ(b.first, first) << rows << " rows, rank " << r << " of " << ranks;
        EXPECT_EQ(b.count, end - first) << rows << " rows, rank " << r << " of " << ranks;
        EXPECT_EQ(b.total, rows);
        EXPECT_TRUE(b.count == 0 || b.first % kRowUnit == 0) << b.first;
        next += per_rank[static_cast<size_t>(r)];
      }
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
