#include "kernels/cpu/model_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <utility>
#include <vector>

#include "kernels/cpu/blas.h"
#include "src/core/error.h"

namespace skim::kernels {

void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, double eps, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    double ss = 0.0;
    for (int64_t j = 0; j < dim; ++j) ss += static_cast<double>(xr[j]) * xr[j];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    for (int64_t j = 0; j < dim; ++j) yr[j] = xr[j] * inv * weight[j];
  }
}

std::vector<float> rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling) {
  SKIM_ASSERT(head_dim > 0 && head_dim % 2 == 0);
  const int64_t half = head_dim / 2;
  std::vector<float> out(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    double f = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    switch (scaling.type) {
      case RopeScaling::Type::kNone:
        break;
      case RopeScaling::Type::kLinear:
        f /= scaling.factor;
        break;
      case RopeScaling::Type::kLlama3: {
        // transformers' _compute_llama3_parameters: long wavelengths are divided by the factor,
        // short ones kept, the band between interpolated.
        const double old_ctx = static_cast<double>(scaling.original_max_position_embeddings);
        const double low_wavelen = old_ctx / scaling.low_freq_factor;
        const double high_wavelen = old_ctx / scaling.high_freq_factor;
        const double wavelen = 2.0 * std::numbers::pi / f;
        if (wavelen > low_wavelen) {
          f /= scaling.factor;
        } else if (wavelen >= high_wavelen) {
          const double smooth = (old_ctx / wavelen - scaling.low_freq_factor) /
                                (scaling.high_freq_factor - scaling.low_freq_factor);
          f = (1.0 - smooth) * f / scaling.factor + smooth * f;
        }
        break;
      }
    }
    out[static_cast<size_t>(i)] = static_cast<float>(f);
  }
  return out;
}

RopeTable rope_table(const std::vector<float>& inv_freq, int64_t seq) {
  RopeTable t;
  t.seq = seq;
  t.half = static_cast<int64_t>(inv_freq.size());
  t.cos.resize(static_cast<size_t>(seq * t.half));
  t.sin.resize(t.cos.size());
  for (int64_t p = 0; p < seq; ++p)
    for (int64_t i = 0; i < t.half; ++i) {
      const double angle = static_cast<double>(p) * static_cast<double>(inv_freq[i]);
      t.cos[static_cast<size_t>(p * t.half + i)] = static_cast<float>(std::cos(angle));
      t.sin[static_cast<size_t>(p * t.half + i)] = static_cast<float>(std::sin(angle));
    }
  return t;
}

void rope_apply(float* x, int64_t batch, int64_t heads, int64_t head_dim, const RopeTable& table) {
  const int64_t half = head_dim / 2;
  const int64_t seq = table.seq;
  SKIM_ASSERT(table.half == half);
  const int64_t width = heads * head_dim;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < batch * seq; ++t) {
    const float* c = table.cos.data() + (t % seq) * half;
    const float* s = table.sin.data() + (t % seq) * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* xh = x + t * width + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = xh[i];
        const float b = xh[i + half];
        xh[i] = a * c[i] - b * s[i];
        xh[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

void rope_apply(float* x, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                const float* inv_freq) {
  const std::vector<float> freq(inv_freq, inv_freq + head_dim / 2);
  rope_apply(x, batch, heads, head_dim, rope_table(freq, seq));
}

void causal_attention(const float* q, const float* k, const float* v, int64_t batch, int64_t seq,
                      int64_t heads, int64_t kv_heads, int64_t head_dim, float* out) {
  SKIM_ASSERT(kv_heads > 0 && heads % kv_heads == 0);
  const int64_t group = heads / kv_heads;
  const int64_t q_width = heads * head_dim;
  const int64_t kv_width = kv_heads * head_dim;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  // Items of kAttentionQueries queries of one (sequence, head): queries [t0, t1) need keys
  // [0, t1) only. The longest items first, so the last ones to finish are short.
  constexpr int64_t kAttentionQueries = 128;
  const int64_t blocks = (seq + kAttentionQueries - 1) / kAttentionQueries;
  const int64_t pairs = batch * heads;
  parallel_items(pairs * blocks, [&](int64_t item) {
    const int64_t blk = blocks - 1 - item / pairs, p = item % pairs;
    const int64_t b = p / heads, h = p % heads, g = h / group;
    const int64_t t0 = blk * kAttentionQueries, t1 = std::min(seq, t0 + kAttentionQueries);
    const int64_t nq = t1 - t0, keys = t1;
    thread_local std::vector<float> scores;
    scores.resize(static_cast<size_t>(nq * keys));
    const float* qb = q + (b * seq + t0) * q_width + h * head_dim;
    const float* kb = k + b * seq * kv_width + g * head_dim;
    const float* vb = v + b * seq * kv_width + g * head_dim;
    gemm_serial(false, true, nq, keys, head_dim, scale, qb, q_width, kb, kv_width, 0.0f,
                scores.data(), keys);
    for (int64_t r = 0; r < nq; ++r) {
      const int64_t t = t0 + r;  // query position: attends to 0..t
      float* row = scores.data() + r * keys;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s <= t; ++s) mx = std::max(mx, row[s]);
      double sum = 0.0;
      for (int64_t s = 0; s <= t; ++s) {
        row[s] = std::exp(row[s] - mx);
        sum += row[s];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t s = 0; s <= t; ++s) row[s] *= inv;
      for (int64_t s = t + 1; s < keys; ++s) row[s] = 0.0f;  // causal mask
    }
    gemm_serial(false, false, nq, head_dim, keys, 1.0f, scores.data(), keys, vb, kv_width, 0.0f,
                out + (b * seq + t0) * q_width + h * head_dim, q_width);
  });
}

void silu_mul(float* gate, const float* up, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

namespace {

// max and log sum exp(row - max) of one row, in double.
std::pair<double, double> log_sum_exp(const float* row, int64_t vocab) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < vocab; ++j) mx = std::max(mx, row[j]);
  const double m = mx;
  double sum = 0.0;
  for (int64_t j = 0; j < vocab; ++j) sum += std::exp(static_cast<double>(row[j]) - m);
  return {m, std::log(sum)};
}

}  // namespace

void log_softmax_nll(const float* logits, int64_t rows, int64_t vocab, const int32_t* targets,
                     double* nll) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = logits + r * vocab;
    const auto [m, lse] = log_sum_exp(row, vocab);
    nll[r] = lse - (static_cast<double>(row[targets[r]]) - m);
  }
}

void log_softmax(const float* logits, int64_t rows, int64_t vocab, float* log_p) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = logits + r * vocab;
    const auto [m, lse] = log_sum_exp(row, vocab);
    for (int64_t j = 0; j < vocab; ++j)
      log_p[r * vocab + j] = static_cast<float>(static_cast<double>(row[j]) - m - lse);
  }
}

void kl_divergence(const float* log_p, const float* logits_q, int64_t rows, int64_t vocab,
                   double* kl) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* lp = log_p + r * vocab;
    const float* row = logits_q + r * vocab;
    const auto [m, lse] = log_sum_exp(row, vocab);
    double sum = 0.0;
    for (int64_t j = 0; j < vocab; ++j) {
      const double log_q = static_cast<double>(row[j]) - m - lse;
      sum += std::exp(static_cast<double>(lp[j])) * (static_cast<double>(lp[j]) - log_q);
    }
    kl[r] = sum;
  }
}

}  // namespace skim::kernels
