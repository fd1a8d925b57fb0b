#pragma once
// GPU decoder operations: host launchers, CUDA-free. Every pointer is a DEVICE pointer; layouts
// are those of the CPU twins in kernels/cpu/model_ops.h (row-major [tokens, features], `batch`
// sequences of `seq` tokens, sequence after sequence). `stream` is a cudaStream_t (nullptr: the
// legacy default stream). Launches are asynchronous; a failed launch throws skim::Error.
// Defined in kernels/cuda/{embedding,rmsnorm,rope,attention,silu_mul,convert,log_softmax}.cu.
#include <cstdint>

namespace skim::kernels::gpu {

// Twin: model::LlamaModel::embed. out[t] = table[tokens[t]] for `count` tokens of `hidden`
// floats; the caller has checked every token against the vocabulary (LlamaModel::check_tokens).
void embed_tokens(const float* table, const int32_t* tokens, int64_t count, int64_t hidden,
                  float* out, void* stream);

// Twin: kernels::rmsnorm. One block per row, fp32 sums; y may alias x.
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, double eps, float* y,
             void* stream);

// Twin: kernels::rope_apply (rotate-half). inv_freq [head_dim / 2] from kernels::rope_inv_freq;
// angles in double like the twin.
void rope_apply(float* x, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                const float* inv_freq, void* stream);
// The same for one sequence of `tokens` rows at positions position0, position0 + 1, ... (new
// tokens appended to a KV cache; twin: model::forward_step's rotation).
void rope_apply_at(float* x, int64_t tokens, int64_t position0, int64_t heads, int64_t head_dim,
                   const float* inv_freq, void* stream);

// Twin: kernels::causal_attention. One warp per (sequence, head, query), keys in chunks of 32
// with an online softmax; head_dim <= 256 and a multiple of 4.
void causal_attention(const float* q, const float* k, const float* v, int64_t batch, int64_t seq,
                      int64_t heads, int64_t kv_heads, int64_t head_dim, float* out, void* stream);
// One sequence of `tokens` new queries at positions past .. past + tokens - 1 against a KV cache
// of past + tokens rows (the new tokens' keys and values already appended): query t attends
// cache rows 0 .. past + t. The same kernel as causal_attention (past = 0 is that case).
void cached_attention(const float* q, const float* k_cache, const float* v_cache, int64_t tokens,
                      int64_t past, int64_t heads, int64_t kv_heads, int64_t head_dim, float* out,
                      void* stream);

// Twin: kernels::silu_mul. gate[i] = silu(gate[i]) * up[i].
void silu_mul(float* gate, const float* up, int64_t n, void* stream);

// y[i] += x[i] (the residual adds).
void add_inplace(float* y, const float* x, int64_t n, void* stream);
// y[r, c] += bias[c] for `rows` rows of `cols`.
void add_bias(float* y, const float* bias, int64_t rows, int64_t cols, void* stream);

// Twin: kernels::log_softmax_nll. nll[r] = -log softmax(logits[r])[targets[r]], one block per
// row, the sum of exponentials in double as the twin; targets must lie in [0, vocab).
void log_softmax_nll(const float* logits, int64_t rows, int64_t vocab, const int32_t* targets,
                     double* nll, void* stream);
// Twin: kernels::log_softmax. log_p [rows, vocab] fp32 from sums in double.
void log_softmax(const float* logits, int64_t rows, int64_t vocab, float* log_p, void* stream);
// Twin: kernels::kl_divergence. kl[r] = KL(p_r || softmax(logits_q[r])), p_r = exp(log_p[r]).
void kl_divergence(const float* log_p, const float* logits_q, int64_t rows, int64_t vocab,
                   double* kl, void* stream);

// fp32 -> fp16 / bf16 (round to nearest even), the inputs of the cuBLAS GEMMs.
void to_half(const float* x, int64_t n, uint16_t* out, void* stream);
void to_bf16(const float* x, int64_t n, uint16_t* out, void* stream);

}  // namespace skim::kernels::gpu
