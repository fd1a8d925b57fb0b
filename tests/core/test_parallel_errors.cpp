// ParallelErrors: an exception thrown inside an OpenMP parallel loop reaches the caller (instead of
// std::terminate), as the first one thrown, after every iteration ran.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <stdexcept>

#include "src/core/error.h"
#include "src/core/parallel_errors.h"

namespace skim {
namespace {

TEST(ParallelErrors, RethrowsAfterTheRegion) {
  std::atomic<int> ran{0};
  ParallelErrors errors;
#pragma omp parallel for num_threads(4) schedule(static)
  for (int i = 0; i < 64; ++i) {
    errors.run([&] {
      ++ran;
      if (i == 37) fail(ErrorKind::kNumeric, "row {} failed", i);
    });
  }
  EXPECT_EQ(ran.load(), 64);  // the other iterations were not cut short
  try {
    errors.rethrow();
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNumeric);
    EXPECT_STREQ(e.what(), "row 37 failed");
  }
}

TEST(ParallelErrors, KeepsOneOfManyAndOtherExceptionTypes) {
  ParallelErrors errors;
#pragma omp parallel for num_threads(4)
  for (int i = 0; i < 16; ++i) errors.run([&] { throw std::runtime_error("boom"); });
  EXPECT_THROW(errors.rethrow(), std::runtime_error);
  ParallelErrors none;
#pragma omp parallel for num_threads(4)
  for (int i = 0; i < 16; ++i) none.run([] {});
  EXPECT_NO_THROW(none.rethrow());
}

}  // namespace
}  // namespace skim
