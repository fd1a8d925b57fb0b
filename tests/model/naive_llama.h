#pragma once
// An independent LLaMA forward in double precision, written straight from the math with plain
// loops and per-token attention (no BLAS, no skim kernels), as the reference for the decoder.
#include <fmt/format.h>

#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "tests/model/synthetic_model.h"

namespace skim::testing {

using Vec = std::vector<double>;
using Mat = std::vector<Vec>;  // [tokens][features]

// The inputs of each linear group of one layer, for checking capture hooks.
struct NaiveLayerTrace {
  Mat qkv_in, o_in, gate_up_in, down_in;
};

inline Vec naive_linear(const Tensor& w, const Vec& x) {
  const int64_t out = w.dim(0), in = w.dim(1);
  Vec y(static_cast<size_t>(out), 0.0);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) y[o] += static_cast<double>(w.at(o, i)) * x[i];
  return y;
}

inline Vec naive_rmsnorm(const Vec& x, const Tensor& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  Vec y(x.size());
  for (size_t j = 0; j < x.size(); ++j) y[j] = x[j] * inv * w.data()[j];
  return y;
}

// Frequency of pair i, with the scaling rules of transformers' rope_init functions.
inline double naive_inv_freq(int64_t i, int64_t head_dim, double theta, const RopeScaling& s) {
  double f = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(head_dim));
  if (s.type == RopeScaling::Type::kLinear) return f / s.factor;
  if (s.type == RopeScaling::Type::kLlama3) {
    const double old_ctx = static_cast<double>(s.original_max_position_embeddings);
    const double wavelen = 2 * std::numbers::pi / f;
    if (wavelen < old_ctx / s.high_freq_factor) return f;
    if (wavelen > old_ctx / s.low_freq_factor) return f / s.factor;
    const double smooth =
        (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    return (1 - smooth) * f / s.factor + smooth * f;
  }
  return f;
}

// Rotate-half rotary embedding of every head of x at position pos.
inline void naive_rope(Vec& x, int64_t heads, int64_t head_dim, int64_t pos, const ModelConfig& c) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i) {
      const double angle =
          static_cast<double>(pos) * naive_inv_freq(i, head_dim, c.rope_theta, c.rope_scaling);
      double& a = x[h * head_dim + i];
      double& b = x[h * head_dim + i + half];
      const double na = a * std::cos(angle) - b * std::sin(angle);
      const double nb = b * std::cos(angle) + a * std::sin(angle);
      a = na;
      b = nb;
    }
}

// One decoder layer over one sequence, hidden [seq][hidden] updated in place.
inline void naive_layer(const SyntheticSource& src, int64_t layer, Mat& hidden,
                        NaiveLayerTrace* trace = nullptr) {
  const ModelConfig& c = src.config();
  const std::string p = fmt::format("model.layers.{}.", layer);
  auto t = [&](const std::string& name) -> const Tensor& { return src.tensor(p + name); };
  auto add_bias = [&](Vec& y, const std::string& name) {
    if (!c.attention_bias) return;
    const Tensor& b = t(name);
    for (size_t i = 0; i < y.size(); ++i) y[i] += b.data()[i];
  };
  const size_t seq = hidden.size();
  const int64_t hd = c.head_dim, group = c.num_heads / c.num_kv_heads;
  Mat q(seq), k(seq), v(seq);
  for (size_t s = 0; s < seq; ++s) {
    const Vec xn = naive_rmsnorm(hidden[s], t("input_layernorm.weight"), c.rms_norm_eps);
    if (trace) trace->qkv_in.push_back(xn);
    q[s] = naive_linear(t("self_attn.q_proj.weight"), xn);
    k[s] = naive_linear(t("self_attn.k_proj.weight"), xn);
    v[s] = naive_linear(t("self_attn.v_proj.weight"), xn);
    add_bias(q[s], "self_attn.q_proj.bias");
    add_bias(k[s], "self_attn.k_proj.bias");
    add_bias(v[s], "self_attn.v_proj.bias");
    naive_rope(q[s], c.num_heads, hd, static_cast<int64_t>(s), c);
    naive_rope(k[s], c.num_kv_heads, hd, static_cast<int64_t>(s), c);
  }
  for (size_t s = 0; s < seq; ++s) {
    // Token s attends to tokens 0..s.
    Vec attn(static_cast<size_t>(c.num_heads * hd), 0.0);
    for (int64_t h = 0; h < c.num_heads; ++h) {
      const int64_t g = h / group;
      Vec score(s + 1);
      double mx = -1e300;
      for (size_t u = 0; u <= s; ++u) {
        double dot = 0;
        for (int64_t d = 0; d < hd; ++d) dot += q[s][h * hd + d] * k[u][g * hd + d];
        score[u] = dot / std::sqrt(static_cast<double>(hd));
        mx = std::max(mx, score[u]);
      }
      double z = 0;
      for (double& e : score) z += (e = std::exp(e - mx));
      for (size_t u = 0; u <= s; ++u)
        for (int64_t d = 0; d < hd; ++d) attn[h * hd + d] += score[u] / z * v[u][g * hd + d];
    }
    if (trace) trace->o_in.push_back(attn);
    const Vec o = naive_linear(t("self_attn.o_proj.weight"), attn);
    for (size_t j = 0; j < o.size(); ++j) hidden[s][j] += o[j];
  }
  for (size_t s = 0; s < seq; ++s) {
    const Vec xn = naive_rmsnorm(hidden[s], t("post_attention_layernorm.weight"), c.rms_norm_eps);
    if (trace) trace->gate_up_in.push_back(xn);
    const Vec gate = naive_linear(t("mlp.gate_proj.weight"), xn);
    const Vec up = naive_linear(t("mlp.up_proj.weight"), xn);
    Vec act(gate.size());
    for (size_t j = 0; j < act.size(); ++j) act[j] = gate[j] / (1 + std::exp(-gate[j])) * up[j];
    if (trace) trace->down_in.push_back(act);
    const Vec d = naive_linear(t("mlp.down_proj.weight"), act);
    for (size_t j = 0; j < d.size(); ++j) hidden[s][j] += d[j];
  }
}

inline Mat naive_embed(const SyntheticSource& src, const std::vector<int32_t>& ids) {
  const Tensor& e = src.tensor("model.embed_tokens.weight");
  Mat h;
  for (int32_t id : ids) {
    const auto row = e.row(id);
    h.emplace_back(row.begin(), row.end());
  }
  return h;
}

// Logits [seq][vocab] of one sequence.
inline Mat naive_logits(const SyntheticSource& src, const std::vector<int32_t>& ids) {
  const ModelConfig& c = src.config();
  Mat h = naive_embed(src, ids);
  for (int64_t l = 0; l < c.num_layers; ++l) naive_layer(src, l, h);
  const Tensor& head =
      src.tensor(c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  Mat logits;
  for (const Vec& x : h)
    logits.push_back(
        naive_linear(head, naive_rmsnorm(x, src.tensor("model.norm.weight"), c.rms_norm_eps)));
  return logits;
}

// Sum over positions 0..L-2 of -log p(ids[s+1] | ids[0..s]).
inline double naive_nll_sum(const SyntheticSource& src, const std::vector<int32_t>& ids) {
  const Mat logits = naive_logits(src, ids);
  double sum = 0;
  for (size_t s = 0; s + 1 < ids.size(); ++s) {
    double mx = -1e300;
    for (double x : logits[s]) mx = std::max(mx, x);
    double z = 0;
    for (double x : logits[s]) z += std::exp(x - mx);
    sum += std::log(z) + mx - logits[s][static_cast<size_t>(ids[s + 1])];
  }
  return sum;
}

}  // namespace skim::testing
