#include <gtest/gtest.h>

#include "src/core/error.h"
#include "src/core/tensor.h"

namespace skim {
namespace {

TEST(Tensor, ShapeRowsAndReshape) {
  Tensor t({2, 3}, {0, 1, 2, 3, 4, 5});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.dim(-1), 3);
  EXPECT_EQ(t.row(1)[2], 5.0f);
  EXPECT_EQ(t.at(1, 0), 3.0f);
  t.reshape({3, 2});
  EXPECT_EQ(t.at(1, 0), 2.0f);
  EXPECT_EQ(t.shape_string(), "[3, 2]");
}

TEST(Tensor, RowsCopiesARangeOfRows) {
  const Tensor t({4, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  const Tensor mid = t.rows(1, 2);
  EXPECT_EQ(mid.shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::vector<float>(mid.values().begin(), mid.values().end()),
            (std::vector<float>{3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(t.rows(4, 0).shape(), (std::vector<int64_t>{0, 3}));
  EXPECT_THROW(t.rows(3, 2), Error);
  EXPECT_THROW(t.rows(-1, 1), Error);
}

TEST(Tensor, RejectsMismatchedSizes) {
  EXPECT_THROW(Tensor({2, 2}, {1, 2, 3}), Error);
  Tensor t({4});
  EXPECT_THROW(t.reshape({3}), Error);
}

TEST(Errors, ExitStatusByKind) {
  EXPECT_EQ(exit_status(ErrorKind::kBadInput), 2);
  EXPECT_EQ(exit_status(ErrorKind::kUsage), 2);
  EXPECT_EQ(exit_status(ErrorKind::kIo), 3);
  EXPECT_EQ(exit_status(ErrorKind::kInternal), 3);
  EXPECT_EQ(exit_status(ErrorKind::kStopped), 75);  // EX_TEMPFAIL: resumable
}

}  // namespace
}  // namespace skim

namespace skim {
namespace {

TEST(CheckedNumel, NegativeDimensionsAndOverflowAreRefused) {
  EXPECT_EQ(checked_numel({}), 1);
  EXPECT_EQ(checked_numel({3, 0, 5}), 0);
  EXPECT_EQ(checked_numel({int64_t{1} << 31, int64_t{1} << 31}), int64_t{1} << 62);
  EXPECT_EQ(checked_numel({2, -1}), std::nullopt);
  // 2^32 * 2^31 = 2^63 is one past INT64_MAX; the fuzzer's case: two products far past it.
  EXPECT_EQ(checked_numel({int64_t{1} << 32, int64_t{1} << 31}), std::nullopt);
  EXPECT_EQ(checked_numel({8070450532247928864, 32772496469221736}), std::nullopt);
  EXPECT_THROW(shape_numel({int64_t{1} << 40, int64_t{1} << 40}), Error);
}

}  // namespace
}  // namespace skim
