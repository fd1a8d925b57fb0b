// The fixed-point Hessian: close to X^T X / N computed in double, and the same bits whether the
// samples are added all at once or one at a time (the bounded-memory forward), in any order of
// calls.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "comm/backends.h"
#include "src/core/error.h"
#include "src/pipeline/exact_hessian.h"
#include "tests/quant/synthetic_layer.h"

namespace skim::pipeline {
namespace {

struct Samples {
  int64_t samples = 5, seq = 24, cols = 40;
  std::vector<float> x;
};

// Every local sample held at once (the quantize forward when they fit one micro-batch): the
// bound over all of them, then all of them added.
Tensor hessian_of_all(comm::Communicator& comm, const Samples& s) {
  const int64_t step = s.seq * s.cols;
  double local = 0.0;
  for (int64_t k = 0; k < s.samples; ++k)
    local = std::max(local, sample_bound(s.x.data() + k * step, s.seq, s.cols));
  ExactHessian acc(s.cols, agree_bounds(comm, {local}, {s.cols})[0], s.samples);
  acc.add_samples(s.x.data(), s.samples, s.seq);
  return acc.reduce(comm, s.seq);
}

Samples make_samples() {
  Samples s;
  quant::testing::SyntheticRng rng(11);
  s.x.resize(static_cast<size_t>(s.samples * s.seq * s.cols));
  for (int64_t i = 0; i < static_cast<int64_t>(s.x.size()); ++i)
    // Uneven channels (an outlier column) and an uneven sample, as in real activations.
    s.x[static_cast<size_t>(i)] = static_cast<float>(rng.normal() * (i % s.cols == 3 ? 30.0 : 1.0) *
                                                     (i / (s.seq * s.cols) == 2 ? 4.0 : 1.0));
  return s;
}

TEST(ExactHessian, MatchesTheDoubleReference) {
  const Samples s = make_samples();
  auto comm = comm::make_local_communicator();
  const Tensor h = hessian_of_all(*comm, s);
  const double n = static_cast<double>(s.samples * s.seq);
  double max_diag = 0.0;
  for (int64_t j = 0; j < s.cols; ++j)
    max_diag = std::max(max_diag, static_cast<double>(h.at(j, j)));
  for (int64_t a = 0; a < s.cols; ++a)
    for (int64_t b = 0; b < s.cols; ++b) {
      double ref = 0.0;
      for (int64_t t = 0; t < s.samples * s.seq; ++t)
        ref += static_cast<double>(s.x[static_cast<size_t>(t * s.cols + a)]) *
               s.x[static_cast<size_t>(t * s.cols + b)];
      ref /= n;
      // fp32 partials: a few fp32 roundings of the largest entry.
      EXPECT_NEAR(h.at(a, b), ref, 1e-6 * max_diag) << a << "," << b;
    }
}

TEST(ExactHessian, OneSampleAtATimeGivesTheSameBits) {
  const Samples s = make_samples();
  auto comm = comm::make_local_communicator();
  const Tensor all = hessian_of_all(*comm, s);

  const int64_t step = s.seq * s.cols;
  double local = 0.0;
  for (int64_t k = 0; k < s.samples; ++k)
    local = std::max(local, sample_bound(s.x.data() + k * step, s.seq, s.cols));
  const double bound = agree_bounds(*comm, {local}, {s.cols})[0];
  ExactHessian acc(s.cols, bound, s.samples);
  for (int64_t k = s.samples - 1; k >= 0; --k) acc.add_samples(s.x.data() + k * step, 1, s.seq);
  const Tensor streamed = acc.reduce(*comm, s.seq);
  ASSERT_EQ(streamed.shape(), all.shape());
  EXPECT_EQ(std::memcmp(streamed.data(), all.data(), all.numel() * sizeof(float)), 0);
}

TEST(ExactHessian, RefusesNonFiniteActivations) {
  Samples s = make_samples();
  s.x[7] = std::nanf("");
  auto comm = comm::make_local_communicator();
  EXPECT_THROW(hessian_of_all(*comm, s), Error);
}

}  // namespace
}  // namespace skim::pipeline
