// Each decoder operation on the GPU against its CPU twin (kernels/cpu/model_ops.h) on random
// inputs. Both sides compute in fp32; tolerances allow for the different summation orders.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/model_ops.h"
#include "kernels/gpu/device_memory.h"
#include "kernels/gpu/model_ops.h"
#include "src/core/half.h"
#include "tests/kernels_gpu/gpu_test_util.h"

namespace skim::kernels::gpu {
namespace {

using skim::testing::max_abs;
using skim::testing::max_abs_diff;
using skim::testing::random_floats;

TEST(GpuOps, RmsnormMatchesCpu) {
  SKIM_REQUIRE_GPU();
  for (const int64_t dim : {1, 63, 576, 4096}) {
    const int64_t rows = 37;
    const auto x = random_floats(static_cast<size_t>(rows * dim), 1, 3.0f);
    const auto w = random_floats(static_cast<size_t>(dim), 2);
    std::vector<float> ref(x.size());
    kernels::rmsnorm(x.data(), w.data(), rows, dim, 1e-5, ref.data());
    DeviceArray<float> dx(x), dw(w), dy(x.size());
    rmsnorm(dx.data(), dw.data(), rows, dim, 1e-5, dy.data(), nullptr);
    // Outputs are O(|w|): 1e-5 relative to the largest covers fp32 sums of up to 4096 squares.
    EXPECT_LE(max_abs_diff(dy.to_host(), ref), 1e-5 * max_abs(ref)) << "dim " << dim;
    rmsnorm(dx.data(), dw.data(), rows, dim, 1e-5, dx.data(), nullptr);  // in place
    EXPECT_LE(max_abs_diff(dx.to_host(), ref), 1e-5 * max_abs(ref)) << "in place, dim " << dim;
  }
}

TEST(GpuOps, RopeMatchesCpu) {
  SKIM_REQUIRE_GPU();
  const int64_t batch = 3, seq = 333, heads = 5, head_dim = 64;
  RopeScaling llama3;
  llama3.type = RopeScaling::Type::kLlama3;
  llama3.factor = 8.0;
  llama3.original_max_position_embeddings = 128;
  for (const RopeScaling& scaling : {RopeScaling{}, llama3}) {
    const auto inv = kernels::rope_inv_freq(head_dim, 10000.0, scaling);
    auto x = random_floats(static_cast<size_t>(batch * seq * heads * head_dim), 3);
    DeviceArray<float> dx(x), dinv(inv);
    kernels::rope_apply(x.data(), batch, seq, heads, head_dim, inv.data());
    rope_apply(dx.data(), batch, seq, heads, head_dim, dinv.data(), nullptr);
    // Same double-precision angles, cos/sin rounded to float on both sides: a few fp32 ulps.
    EXPECT_LE(max_abs_diff(dx.to_host(), x), 2e-6 * max_abs(x));
  }
}

struct AttentionCase {
  int64_t batch, seq, heads, kv_heads, head_dim;
};

TEST(GpuOps, CausalAttentionMatchesCpu) {
  SKIM_REQUIRE_GPU();
  for (const AttentionCase& c : {AttentionCase{1, 1, 2, 1, 32}, AttentionCase{2, 31, 4, 2, 64},
                                 AttentionCase{2, 70, 9, 3, 64}, AttentionCase{1, 129, 8, 8, 128},
                                 AttentionCase{1, 40, 4, 1, 256}}) {
    const int64_t tokens = c.batch * c.seq;
    const auto q = random_floats(static_cast<size_t>(tokens * c.heads * c.head_dim), 4);
    const auto k = random_floats(static_cast<size_t>(tokens * c.kv_heads * c.head_dim), 5);
    const auto v = random_floats(static_cast<size_t>(tokens * c.kv_heads * c.head_dim), 6);
    std::vector<float> ref(q.size());
    kernels::causal_attention(q.data(), k.data(), v.data(), c.batch, c.seq, c.heads, c.kv_heads,
                              c.head_dim, ref.data());
    DeviceArray<float> dq(q), dk(k), dv(v), dout(q.size());
    causal_attention(dq.data(), dk.data(), dv.data(), c.batch, c.seq, c.heads, c.kv_heads,
                     c.head_dim, dout.data(), nullptr);
    // Outputs are convex combinations of N(0,1) values; scores up to ~|q||k|/sqrt(d) ~ 5 make
    // exp() differences of a few ulps: 2e-5 absolute.
    EXPECT_LE(max_abs_diff(dout.to_host(), ref), 2e-5)
        << c.batch << "x" << c.seq << " heads " << c.heads << "/" << c.kv_heads << " d "
        << c.head_dim;
  }
}

TEST(GpuOps, SiluMulAddAndConversions) {
  SKIM_REQUIRE_GPU();
  const size_t n = 100003;
  auto gate = random_floats(n, 7, 4.0f);
  const auto up = random_floats(n, 8);
  DeviceArray<float> dg(gate), du(up);
  kernels::silu_mul(gate.data(), up.data(), static_cast<int64_t>(n));
  silu_mul(dg.data(), du.data(), static_cast<int64_t>(n), nullptr);
  const auto got = dg.to_host();
  for (size_t i = 0; i < n; ++i) ASSERT_NEAR(got[i], gate[i], 1e-6 * std::abs(gate[i]) + 1e-7) << i;

  add_inplace(dg.data(), du.data(), static_cast<int64_t>(n), nullptr);
  const auto sum = dg.to_host();
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(sum[i], got[i] + up[i]) << i;  // one rounding, exact

  const int64_t rows = 7, cols = 33;
  const auto bias = random_floats(static_cast<size_t>(cols), 9);
  const auto y0 = random_floats(static_cast<size_t>(rows * cols), 10);
  DeviceArray<float> dy(y0), db(bias);
  add_bias(dy.data(), db.data(), rows, cols, nullptr);
  const auto yb = dy.to_host();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const auto i = static_cast<size_t>(r * cols + j);
      ASSERT_EQ(yb[i], y0[i] + bias[static_cast<size_t>(j)]);
    }

  // Round to nearest even on the device, bit for bit the host conversions of src/core/half.h.
  auto x = random_floats(n, 11, 100.0f);
  x[0] = 1e-8f;     // subnormal half
  x[1] = 70000.0f;  // overflows half
  DeviceArray<float> dx(x);
  DeviceArray<uint16_t> h(n), b(n);
  to_half(dx.data(), static_cast<int64_t>(n), h.data(), nullptr);
  to_bf16(dx.data(), static_cast<int64_t>(n), b.data(), nullptr);
  const auto hh = h.to_host(), bb = b.to_host();
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(hh[i], float_to_half(x[i])) << x[i];
    ASSERT_EQ(bb[i], float_to_bf16(x[i])) << x[i];
  }
}

// New tokens against a KV cache: the last `tokens` rows of one sequence of `seq`, with keys and
// values of all seq rows in the cache, must give the last rows of the CPU's full causal attention
// (the twin), and rope_apply_at on those rows the last rows of the full rotation.
TEST(GpuOps, CachedAttentionAndRopeAtMatchTheFullSequence) {
  SKIM_REQUIRE_GPU();
  const int64_t seq = 77, heads = 6, kv_heads = 2, head_dim = 64;
  const int64_t q_width = heads * head_dim, kv_width = kv_heads * head_dim;
  const auto q = random_floats(static_cast<size_t>(seq * q_width), 13);
  const auto k = random_floats(static_cast<size_t>(seq * kv_width), 14);
  const auto v = random_floats(static_cast<size_t>(seq * kv_width), 15);
  std::vector<float> ref(q.size());
  kernels::causal_attention(q.data(), k.data(), v.data(), 1, seq, heads, kv_heads, head_dim,
                            ref.data());
  const auto inv = kernels::rope_inv_freq(head_dim, 10000.0, RopeScaling{});
  auto rotated = q;
  kernels::rope_apply(rotated.data(), 1, seq, heads, head_dim, inv.data());
  for (const int64_t tokens : {int64_t{1}, int64_t{5}, seq}) {
    const int64_t past = seq - tokens;
    const std::vector<float> q_new(q.begin() + past * q_width, q.end());
    DeviceArray<float> dq(q_new), dk(k), dv(v), dout(q_new.size()), dinv(inv);
    cached_attention(dq.data(), dk.data(), dv.data(), tokens, past, heads, kv_heads, head_dim,
                     dout.data(), nullptr);
    const std::vector<float> want(ref.begin() + past * q_width, ref.end());
    EXPECT_LE(max_abs_diff(dout.to_host(), want), 2e-5) << tokens << " new tokens";
    rope_apply_at(dq.data(), tokens, past, heads, head_dim, dinv.data(), nullptr);
    const std::vector<float> want_rot(rotated.begin() + past * q_width, rotated.end());
    EXPECT_LE(max_abs_diff(dq.to_host(), want_rot), 2e-6 * max_abs(want_rot)) << tokens;
  }
}

// The NLL against its twin on logits of a 49152-token vocabulary (SmolLM2's), scaled so the
// softmax is peaked: both sum the exponentials in double, in different orders, so they agree to
// about 1e-12 relative; 1e-9 bounds it.
TEST(GpuOps, LogSoftmaxNllMatchesCpu) {
  SKIM_REQUIRE_GPU();
  const int64_t rows = 37, vocab = 49152;
  const auto logits = random_floats(static_cast<size_t>(rows * vocab), 12, 8.0f);
  std::vector<int32_t> targets(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    targets[static_cast<size_t>(r)] = static_cast<int32_t>((r * 7919) % vocab);
  std::vector<double> want(static_cast<size_t>(rows));
  kernels::log_softmax_nll(logits.data(), rows, vocab, targets.data(), want.data());
  DeviceArray<float> dl(logits);
  DeviceArray<int32_t> dt(targets);
  DeviceArray<double> dn(static_cast<size_t>(rows));
  log_softmax_nll(dl.data(), rows, vocab, dt.data(), dn.data(), nullptr);
  const auto got = dn.to_host();
  for (size_t r = 0; r < want.size(); ++r)
    ASSERT_NEAR(got[r], want[r], 1e-9 * std::abs(want[r])) << r;
}

// log-softmax and KL against their twins on the same logits: sums in double in different orders,
// the log-probabilities then rounded to fp32 on both sides: within 2 fp32 ulps of the row's
// magnitude. The KL kernel gets the twin's log-probabilities, so only the summation order differs:
// within 1e-9 relative.
TEST(GpuOps, LogSoftmaxAndKlMatchCpu) {
  SKIM_REQUIRE_GPU();
  const int64_t rows = 19, vocab = 32000;
  const auto p_logits = random_floats(static_cast<size_t>(rows * vocab), 16, 4.0f);
  auto q_logits = p_logits;
  const auto noise = random_floats(q_logits.size(), 17, 0.3f);
  for (size_t i = 0; i < q_logits.size(); ++i) q_logits[i] += noise[i];
  std::vector<float> log_p(p_logits.size());
  kernels::log_softmax(p_logits.data(), rows, vocab, log_p.data());
  std::vector<double> kl(static_cast<size_t>(rows));
  kernels::kl_divergence(log_p.data(), q_logits.data(), rows, vocab, kl.data());

  DeviceArray<float> dp(p_logits), dq(q_logits), dlog(p_logits.size());
  DeviceArray<double> dkl(static_cast<size_t>(rows));
  log_softmax(dp.data(), rows, vocab, dlog.data(), nullptr);
  const auto got_log = dlog.to_host();
  EXPECT_LE(max_abs_diff(got_log, log_p), 2.5e-7 * max_abs(log_p));
  DeviceArray<float> dref(log_p);
  kl_divergence(dref.data(), dq.data(), rows, vocab, dkl.data(), nullptr);
  const auto got_kl = dkl.to_host();
  for (size_t r = 0; r < kl.size(); ++r) {
    EXPECT_GT(kl[r], 0.0);
    EXPECT_NEAR(got_kl[r], kl[r], 1e-9 * kl[r]) << r;
  }
}

}  // namespace
}  // namespace skim::kernels::gpu
