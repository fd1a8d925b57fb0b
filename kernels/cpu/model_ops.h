#pragma once
// CPU reference implementations of the decoder's numeric operations (fp32, OpenMP over rows,
// BLAS for the products). Future CUDA kernels are tested against these.
// Layout: activations are row-major [tokens, features]; a batch of `batch` sequences of `seq`
// tokens each is stored sequence after sequence.
#include <cstdint>
#include <vector>

#include "src/core/model_config.h"

namespace skim::kernels {

// y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, for `rows` rows of `dim`; y may alias x.
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, double eps, float* y);

// The head_dim / 2 rotary inverse frequencies theta^(-2i/head_dim), with linear or llama3
// scaling applied as Hugging Face transformers defines them.
std::vector<float> rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling);

// cos and sin of position * inv_freq for positions 0..seq-1: [seq, head_dim / 2] each.
struct RopeTable {
  int64_t seq = 0;
  int64_t half = 0;
  std::vector<float> cos, sin;
};
RopeTable rope_table(const std::vector<float>& inv_freq, int64_t seq);

// Rotary embedding in the Hugging Face rotate-half convention: within each head, element i pairs
// with element i + head_dim/2. x is [batch * table.seq, heads * head_dim]; token t of a sequence
// is at position t.
void rope_apply(float* x, int64_t batch, int64_t heads, int64_t head_dim, const RopeTable& table);
// Same, building the table for positions 0..seq-1 from head_dim / 2 inverse frequencies.
void rope_apply(float* x, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                const float* inv_freq);

// Causal grouped-query attention: out[b, t, h] = softmax_{s<=t}(q_h . k_g / sqrt(head_dim)) v_g
// with g = h / (heads / kv_heads). q, out: [batch * seq, heads * head_dim];
// k, v: [batch * seq, kv_heads * head_dim]. Work items are blocks of queries of one (sequence,
// head), each computing only the causal keys with single-threaded BLAS; a result does not
// depend on the thread count.
void causal_attention(const float* q, const float* k, const float* v, int64_t batch, int64_t seq,
                      int64_t heads, int64_t kv_heads, int64_t head_dim, float* out);

// gate[i] = silu(gate[i]) * up[i] for n values.
void silu_mul(float* gate, const float* up, int64_t n);

// Negative log-likelihood -log softmax(logits[r])[targets[r]] per row, computed in double with
// max subtraction; logits is [rows, vocab].
void log_softmax_nll(const float* logits, int64_t rows, int64_t vocab, const int32_t* targets,
                     double* nll);

// log softmax(logits[r]) per row, computed in double with max subtraction, stored in fp32.
void log_softmax(const float* logits, int64_t rows, int64_t vocab, float* log_p);

// KL(p || q) = sum_j p_j (log p_j - log q_j) per row, in double, where log_p holds log
// probabilities (from log_softmax) and q = softmax(logits_q); logits are [rows, vocab].
void kl_divergence(const float* log_p, const float* logits_q, int64_t rows, int64_t vocab,
                   double* kl);

}  // namespace skim::kernels
