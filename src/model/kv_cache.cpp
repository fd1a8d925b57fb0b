#include "src/model/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/model_ops.h"
#include "src/core/error.h"

namespace skim::model {

KvCache::KvCache(const ModelConfig& config, int64_t capacity)
    : layers_(static_cast<size_t>(config.num_layers)),
      inv_freq_(kernels::rope_inv_freq(config.head_dim, config.rope_theta, config.rope_scaling)) {
  const auto row = static_cast<size_t>(config.num_kv_heads * config.head_dim);
  for (LayerKvCache& l : layers_) {
    l.keys.reserve(row * static_cast<size_t>(std::max<int64_t>(capacity, 0)));
    l.values.reserve(l.keys.capacity());
  }
}

void KvCache::clear() {
  for (LayerKvCache& l : layers_) {
    l.keys.clear();
    l.values.clear();
    l.length = 0;
  }
}

namespace {

// Rotate-half rotary embedding of `tokens` rows starting at absolute position `first`; the
// angle is computed as kernels::rope_apply does (double, then rounded), so positions agree.
void rope_at(float* x, int64_t tokens, int64_t first, int64_t heads, int64_t head_dim,
             const float* inv_freq) {
  const int64_t half = head_dim / 2;
  const int64_t width = heads * head_dim;
#pragma omp parallel for schedule(static) if (tokens > 1)
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<float> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(first + t) * static_cast<double>(inv_freq[i]);
      c[static_cast<size_t>(i)] = static_cast<float>(std::cos(angle));
      s[static_cast<size_t>(i)] = static_cast<float>(std::sin(angle));
    }
    for (int64_t h = 0; h < heads; ++h) {
      float* xh = x + t * width + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = xh[i];
        const float b = xh[i + half];
        xh[i] = a * c[static_cast<size_t>(i)] - b * s[static_cast<size_t>(i)];
        xh[i + half] = b * c[static_cast<size_t>(i)] + a * s[static_cast<size_t>(i)];
      }
    }
  }
}

// out[t, h] = softmax_{s <= first + t}(q[t, h] . k[s, g] / sqrt(d)) v[s, g] over the cached rows.
// One item per (token, head): the scores are K_g q_h and the output V_g^T w, two BLAS
// matrix-vector products over the cache (strided by the kv width).
void cached_attention(const float* q, const LayerKvCache& cache, int64_t tokens, int64_t first,
                      int64_t heads, int64_t kv_heads, int64_t head_dim, float* out) {
  const int64_t group = heads / kv_heads;
  const int64_t q_width = heads * head_dim;
  const int64_t kv_width = kv_heads * head_dim;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  const float* keys = cache.keys.data();
  const float* values = cache.values.data();
  kernels::parallel_items(tokens * heads, [&](int64_t item) {
    const int64_t t = item / heads, h = item % heads, g = h / group;
    const int64_t span = first + t + 1;
    thread_local std::vector<float> w;
    w.resize(static_cast<size_t>(span));
    kernels::gemv_serial(false, span, head_dim, scale, keys + g * head_dim, kv_width,
                         q + t * q_width + h * head_dim, 0.0f, w.data());
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t s = 0; s < span; ++s) mx = std::max(mx, w[static_cast<size_t>(s)]);
    double sum = 0.0;
    for (int64_t s = 0; s < span; ++s) {
      w[static_cast<size_t>(s)] = std::exp(w[static_cast<size_t>(s)] - mx);
      sum += w[static_cast<size_t>(s)];
    }
    kernels::gemv_serial(true, span, head_dim, static_cast<float>(1.0 / sum), values + g * head_dim,
                         kv_width, w.data(), 0.0f, out + t * q_width + h * head_dim);
  });
}

}  // namespace

void forward_step(const DecoderLayer& layer, const std::vector<float>& inv_freq,
                  LayerKvCache& cache, float* hidden, int64_t tokens) {
  if (tokens <= 0) return;
  const ModelConfig& c = layer.config();
  const int64_t h = c.hidden_size;
  const int64_t q_width = c.num_heads * c.head_dim;
  const int64_t kv_width = c.num_kv_heads * c.head_dim;
  const int64_t ffn = c.intermediate_size;
  const int64_t first = cache.length;
  SKIM_ASSERT(static_cast<int64_t>(inv_freq.size()) == c.head_dim / 2);
  SKIM_ASSERT(static_cast<int64_t>(cache.keys.size()) == first * kv_width);
  auto buffer = [](int64_t n) { return std::vector<float>(static_cast<size_t>(n)); };

  std::vector<float> normed = buffer(tokens * h);
  kernels::rmsnorm(hidden, layer.input_norm().data(), tokens, h, c.rms_norm_eps, normed.data());
  std::vector<float> q = buffer(tokens * q_width), k = buffer(tokens * kv_width),
                     v = buffer(tokens * kv_width);
  layer.linear(LinearKind::kQ).forward(normed.data(), tokens, q.data());
  layer.linear(LinearKind::kK).forward(normed.data(), tokens, k.data());
  layer.linear(LinearKind::kV).forward(normed.data(), tokens, v.data());
  rope_at(q.data(), tokens, first, c.num_heads, c.head_dim, inv_freq.data());
  rope_at(k.data(), tokens, first, c.num_kv_heads, c.head_dim, inv_freq.data());
  cache.keys.insert(cache.keys.end(), k.begin(), k.end());
  cache.values.insert(cache.values.end(), v.begin(), v.end());
  cache.length += tokens;

  std::vector<float> attn = buffer(tokens * q_width);
  cached_attention(q.data(), cache, tokens, first, c.num_heads, c.num_kv_heads, c.head_dim,
                   attn.data());
  layer.linear(LinearKind::kO).forward(attn.data(), tokens, normed.data());
  for (int64_t i = 0; i < tokens * h; ++i) hidden[i] += normed[static_cast<size_t>(i)];

  kernels::rmsnorm(hidden, layer.post_attention_norm().data(), tokens, h, c.rms_norm_eps,
                   normed.data());
  std::vector<float> gate = buffer(tokens * ffn), up = buffer(tokens * ffn);
  layer.linear(LinearKind::kGate).forward(normed.data(), tokens, gate.data());
  layer.linear(LinearKind::kUp).forward(normed.data(), tokens, up.data());
  kernels::silu_mul(gate.data(), up.data(), tokens * ffn);
  layer.linear(LinearKind::kDown).forward(gate.data(), tokens, normed.data());
  for (int64_t i = 0; i < tokens * h; ++i) hidden[i] += normed[static_cast<size_t>(i)];
}

}  // namespace skim::model
