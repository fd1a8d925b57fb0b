// The CUDA backends of eval, quantize's forward passes and generate (decoder_backend.h). Compiled
// in every build; without CUDA they are stubs that refuse with a usage error, so callers need no
// #if.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "src/core/error.h"
#include "src/pipeline/decoder_backend.h"

#if SKIM_HAVE_CUDA
#include "comm/cuda_devices.h"
#include "kernels/gpu/decoder_layer.h"
#include "kernels/gpu/device_memory.h"
#include "kernels/gpu/lut_geometry.h"
#include "kernels/gpu/model_ops.h"
#include "kernels/gpu/quant_kernels.h"
#include "src/pipeline/exact_hessian.h"
#include "src/pipeline/packed_linear.h"
#include "src/quant/lut_layer.h"
#include "src/quant/uniform_layer.h"
#endif

namespace skim::pipeline {

#if SKIM_HAVE_CUDA

bool cuda_backend_built() {
  return true;
}

namespace {

namespace gpu = kernels::gpu;

std::vector<float> to_vector(const Tensor& t) {
  return std::vector<float>(t.data(), t.data() + t.numel());
}

gpu::DeviceLinear dense_fp16(const Tensor& w, const Tensor& bias) {
  return gpu::DeviceLinear::dense(w.data(), w.dim(0), w.dim(1), gpu::HalfType::kF16,
                                  to_vector(bias));
}

// One linear on the device; `what` names it in errors ("layer 3 self_attn.q_proj").
gpu::DeviceLinear to_device(const model::Linear& linear, const std::string& what) {
  if (const auto* d = dynamic_cast<const model::DenseLinear*>(&linear))
    return dense_fp16(d->weight(), d->bias());
  if (const auto* p = dynamic_cast<const PackedLutLinear*>(&linear))
    return gpu::DeviceLinear::lut(p->layer(), to_vector(p->bias()));
  if (const auto* p = dynamic_cast<const PackedUniformLinear*>(&linear))
    return dense_fp16(quant::dequantize(quant::unpack(p->layer())), p->bias());
  if (const auto* p = dynamic_cast<const PackedColumnLutLinear*>(&linear))
    return dense_fp16(quant::dequantize(p->layer()), p->bias());
  if (const auto* q = dynamic_cast<const QdecLinear*>(&linear)) {
    gpu::DeviceLinear d = to_device(q->linear(), what);
    d.add_residual(q->corrector().residual().codes.data(), q->corrector().scale(), q->channels());
    return d;
  }
  fail(ErrorKind::kInternal, "{}: a linear of a kind the CUDA backend does not know", what);
}

gpu::DeviceLinear to_device(const model::DecoderLayer& layer, model::LinearKind kind) {
  return to_device(layer.linear(kind),
                   "layer " + std::to_string(layer.index()) + " " + model::linear_kind_name(kind));
}

gpu::GpuDecoderLayer to_device_layer(const model::DecoderLayer& layer) {
  std::vector<gpu::DeviceLinear> linears;
  linears.reserve(model::kLinearKindCount);
  for (const model::LinearKind kind : model::kLinearKinds)
    linears.push_back(to_device(layer, kind));
  return gpu::GpuDecoderLayer(layer.config(), std::move(linears), to_vector(layer.input_norm()),
                              to_vector(layer.post_attention_norm()));
}

// The model's embedding resident on the device (fp32, the CPU's values; uploaded on first use)
// and the lookup of a batch of tokens, checked on the host first.
class DeviceEmbedding {
 public:
  void embed(const model::LlamaModel& ends, const int32_t* tokens, int64_t count, float* out) {
    ends.check_tokens(tokens, count);
    if (table_.size() == 0) {
      const Tensor& e = ends.embedding();
      table_ = gpu::DeviceArray<float>(e.data(), static_cast<size_t>(e.numel()));
    }
    if (tokens_.size() < static_cast<size_t>(count))
      tokens_ = gpu::DeviceArray<int32_t>(static_cast<size_t>(count));
    gpu::copy_to_device(tokens_.data(), tokens, static_cast<size_t>(count) * sizeof(int32_t),
                        nullptr);
    gpu::embed_tokens(table_.data(), tokens_.data(), count, ends.config().hidden_size, out,
                      nullptr);
  }

 private:
  gpu::DeviceArray<float> table_;
  gpu::DeviceArray<int32_t> tokens_;
};

class CudaDecoderBackend final : public DecoderBackend {
 public:
  CudaDecoderBackend(const ModelConfig& config, int cuda_device) : config_(config) {
    comm::cuda_select_device(cuda_device);
  }
  void load_states(float* states, int64_t tokens) override {
    const auto n = static_cast<size_t>(tokens * config_.hidden_size);
    if (states_.size() != n) states_ = gpu::DeviceArray<float>(n);
    gpu::copy_to_device(states_.data(), states, n * sizeof(float), nullptr);
  }

  void embed_states(const model::LlamaModel& ends, const int32_t* tokens, int64_t count) override {
    const auto n = static_cast<size_t>(count * config_.hidden_size);
    if (states_.size() != n) states_ = gpu::DeviceArray<float>(n);
    embedding_.embed(ends, tokens, count, states_.data());
  }

  void set_layer(const model::DecoderLayer& layer) override {
    layer_.reset();  // free the previous layer's device memory before the next one's
    layer_ = std::make_unique<gpu::GpuDecoderLayer>(to_device_layer(layer));
  }

  void update_linear(const model::DecoderLayer& layer, model::LinearKind kind) override {
    SKIM_ASSERT(layer_ != nullptr);
    layer_->replace_linear(static_cast<int>(kind), to_device(layer, kind));
  }

  void run_layer(int64_t windows, int64_t seq, int64_t micro_windows,
                 const model::CaptureHook& capture) override {
    const int64_t hidden = config_.hidden_size;
    SKIM_ASSERT(layer_ != nullptr && static_cast<size_t>(windows * seq * hidden) <= states_.size());
    // The captured inputs come to the host for the hook (the Hessians are reduced there).
    gpu::DeviceCapture to_host;
    if (capture)
      to_host = [&](int group, const float* x, int64_t tokens, int64_t features) {
        captured_.resize(static_cast<size_t>(tokens * features));
        gpu::copy_to_host(captured_.data(), x, captured_.size() * sizeof(float), nullptr);
        capture(static_cast<model::LinearGroup>(group), captured_.data(), tokens, features);
      };
    for (int64_t m = 0; m < windows; m += micro_windows) {
      const int64_t mb = std::min(micro_windows, windows - m);
      layer_->forward(states_.data() + m * seq * hidden, mb, seq, nullptr, to_host);
    }
  }

  void store_states(float* states) override {
    gpu::copy_to_host(states, states_.data(), states_.bytes(), nullptr);
  }

  std::vector<double> window_bounds(int64_t windows, int64_t seq) override {
    const int64_t step = seq * config_.hidden_size;
    SKIM_ASSERT(layer_ != nullptr && static_cast<size_t>(windows * step) <= states_.size());
    std::vector<double> bounds(model::kLinearGroupCount, 0.0);
    gpu::DeviceArray<float> one(static_cast<size_t>(step));  // a copy: the states stay
    const auto bound = [&](int group, const float* x, int64_t tokens, int64_t features) {
      if (column_energy_.size() != static_cast<size_t>(features))
        column_energy_ = gpu::DeviceArray<double>(static_cast<size_t>(features));
      gpu::column_energies(x, tokens, features, column_energy_.data(), nullptr);
      auto& b = bounds[static_cast<size_t>(group)];
      b = std::max(b, bound_of_energies(column_energy_.to_host()));
    };
    for (int64_t w = 0; w < windows; ++w) {
      gpu::copy_on_device(one.data(), states_.data() + w * step, one.bytes(), nullptr);
      layer_->forward(one.data(), 1, seq, nullptr, bound);
    }
    return bounds;
  }

  std::vector<Tensor> window_hessians(int64_t windows, int64_t seq,
                                      const std::vector<int64_t>& widths,
                                      const std::vector<double>& bounds, int64_t total_samples,
                                      comm::Communicator& comm) override {
    const int64_t hidden = config_.hidden_size;
    SKIM_ASSERT(layer_ != nullptr && widths.size() == bounds.size() &&
                static_cast<size_t>(windows * seq * hidden) <= states_.size());
    std::vector<gpu::DeviceArray<int64_t>> sums;
    std::vector<int> exponents;
    int64_t widest = 0;
    for (size_t g = 0; g < widths.size(); ++g) {
      const auto n2 = static_cast<size_t>(widths[g] * widths[g]);
      sums.emplace_back(n2);
      gpu::device_memset_zero(sums.back().data(), sums.back().bytes(), nullptr);
      exponents.push_back(hessian_exponent(bounds[g], total_samples));
      widest = std::max(widest, widths[g]);
    }
    gpu::DeviceArray<float> partial(static_cast<size_t>(widest * widest));
    for (int64_t w = 0; w < windows; ++w)
      layer_->forward(states_.data() + w * seq * hidden, 1, seq, nullptr,
                      [&](int group, const float* x, int64_t tokens, int64_t features) {
                        const auto g = static_cast<size_t>(group);
                        SKIM_ASSERT(tokens == seq && features == widths[g]);
                        gpu::exact_hessian_add(x, seq, features, exponents[g], sums[g].data(),
                                               partial.data(), nullptr);
                      });
    partial = {};
    // The sums stay on the device through NCCL (device buffers); another communicator reduces
    // host copies. Either way the same integers, so the same H.
    const bool on_device = comm.backend() == comm::Backend::kNccl;
    std::vector<Tensor> h;
    for (size_t g = 0; g < widths.size(); ++g) {
      const int64_t cols = widths[g], tokens = total_samples * seq;
      if (on_device) {
        gpu::stream_synchronize(nullptr);
        comm.all_reduce_sum(sums[g].data(), cols * cols);
        gpu::DeviceArray<float> mean(static_cast<size_t>(cols * cols));
        gpu::exact_hessian_mean(sums[g].data(), exponents[g], tokens, cols, mean.data(), nullptr);
        Tensor t({cols, cols});
        gpu::copy_to_host(t.data(), mean.data(), mean.bytes(), nullptr);
        h.push_back(std::move(t));
      } else {
        std::vector<int64_t> host = sums[g].to_host();
        comm.all_reduce_sum(host.data(), cols * cols);
        h.push_back(hessian_from_sums(host.data(), exponents[g], tokens, cols));
      }
      sums[g] = {};
    }
    return h;
  }

  double window_nll(const model::LlamaModel& ends, const int32_t* tokens, int64_t windows,
                    int64_t seq) override {
    const int64_t n = norm_states(ends), vocab = config_.vocab_size;
    SKIM_ASSERT(n == windows * seq && seq >= 2);
    // Row t predicts token t + 1 of its window; a window's last row predicts nothing (target 0,
    // left out of the sum: 1 / seq more head work than needed, for one path through the head).
    const auto predicts = [seq](int64_t t) { return (t + 1) % seq != 0; };
    std::vector<int32_t> next(static_cast<size_t>(n), 0);
    for (int64_t t = 0; t < n; ++t)
      if (predicts(t)) next[static_cast<size_t>(t)] = tokens[t + 1];
    const gpu::DeviceArray<int32_t> targets(next);
    gpu::DeviceArray<double> nll(static_cast<size_t>(n));
    for_head_chunks(n, [&](int64_t t0, int64_t rows, const float* logits) {
      gpu::log_softmax_nll(logits, rows, vocab, targets.data() + t0, nll.data() + t0, nullptr);
    });
    const std::vector<double> host = nll.to_host();
    double sum = 0.0;
    for (int64_t t = 0; t < n; ++t)
      if (predicts(t)) sum += host[static_cast<size_t>(t)];
    return sum;
  }

  void reference_log_probs(const model::LlamaModel& ends) override {
    const int64_t tokens = norm_states(ends), vocab = config_.vocab_size;
    reference_ = gpu::DeviceArray<float>(static_cast<size_t>(tokens * vocab));
    for_head_chunks(tokens, [&](int64_t t0, int64_t rows, const float* logits) {
      gpu::log_softmax(logits, rows, vocab, reference_.data() + t0 * vocab, nullptr);
    });
  }

  double kl_to_reference(const model::LlamaModel& ends) override {
    const int64_t tokens = norm_states(ends), vocab = config_.vocab_size;
    SKIM_ASSERT(reference_.size() == static_cast<size_t>(tokens * vocab));
    gpu::DeviceArray<double> kl(static_cast<size_t>(tokens));
    for_head_chunks(tokens, [&](int64_t t0, int64_t rows, const float* logits) {
      gpu::kl_divergence(reference_.data() + t0 * vocab, logits, rows, vocab, kl.data() + t0,
                         nullptr);
    });
    double sum = 0.0;
    for (const double v : kl.to_host()) sum += v;
    return sum;
  }

 private:
  // Final norm of every resident token; uploads the norm and head of `ends` on first use (every
  // call passes the same model). Returns the number of resident tokens.
  int64_t norm_states(const model::LlamaModel& ends) {
    const int64_t hidden = config_.hidden_size;
    const auto tokens = static_cast<int64_t>(states_.size()) / hidden;
    if (!head_) {
      head_ = std::make_unique<gpu::DeviceLinear>(to_device(ends.head(), "lm_head"));
      final_norm_ = gpu::DeviceArray<float>(ends.final_norm_weight().data(),
                                            static_cast<size_t>(config_.hidden_size));
    }
    gpu::rmsnorm(states_.data(), final_norm_.data(), tokens, hidden, config_.rms_norm_eps,
                 states_.data(), nullptr);
    return tokens;
  }

  // fn(first token, rows, logits) over the resident states in blocks of at most 256 MiB of logits.
  template <typename Fn>
  void for_head_chunks(int64_t tokens, Fn&& fn) {
    const int64_t vocab = config_.vocab_size, hidden = config_.hidden_size;
    const int64_t chunk = std::clamp<int64_t>((int64_t{256} << 20) / (4 * vocab), 1, tokens);
    gpu::DeviceArray<float> logits(static_cast<size_t>(chunk * vocab));
    for (int64_t t0 = 0; t0 < tokens; t0 += chunk) {
      const int64_t rows = std::min(chunk, tokens - t0);
      head_->forward(states_.data() + t0 * hidden, rows, logits.data(), scratch_, nullptr);
      fn(t0, rows, logits.data());
    }
  }

  ModelConfig config_;
  gpu::DeviceArray<float> states_;
  std::unique_ptr<gpu::GpuDecoderLayer> layer_;
  std::unique_ptr<gpu::DeviceLinear> head_;  // uploaded on first use
  gpu::DeviceArray<float> final_norm_;
  DeviceEmbedding embedding_;
  gpu::DeviceArray<float> reference_;  // [tokens, vocab] log-probabilities
  gpu::DeviceArray<uint16_t> scratch_;
  std::vector<float> captured_;             // the host copy of a captured input
  gpu::DeviceArray<double> column_energy_;  // window_bounds' scratch
};

class CudaDecodeBackend final : public DecodeBackend {
 public:
  CudaDecodeBackend(const model::LlamaModel& ends, const std::vector<model::DecoderLayer>& layers,
                    int64_t capacity, int cuda_device)
      : config_(ends.config()), ends_(ends) {
    comm::cuda_select_device(cuda_device);
    const int64_t kv_width = config_.num_kv_heads * config_.head_dim;
    for (const model::DecoderLayer& layer : layers) {
      layers_.push_back(to_device_layer(layer));
      caches_.emplace_back(capacity, kv_width);
    }
    head_ = std::make_unique<gpu::DeviceLinear>(to_device(ends.head(), "lm_head"));
    norm_ = gpu::DeviceArray<float>(ends.final_norm_weight().data(),
                                    static_cast<size_t>(config_.hidden_size));
    logits_ = gpu::DeviceArray<float>(static_cast<size_t>(config_.vocab_size));
  }

  void step(const int32_t* ids, int64_t count, float* logits) override {
    const int64_t h = config_.hidden_size;
    const auto n = static_cast<size_t>(count * h);
    if (states_.size() < n) states_ = gpu::DeviceArray<float>(n);
    embedding_.embed(ends_, ids, count, states_.data());
    for (size_t l = 0; l < layers_.size(); ++l)
      layers_[l].forward_step(states_.data(), count, caches_[l], nullptr);
    float* last = states_.data() + (count - 1) * h;
    gpu::rmsnorm(last, norm_.data(), 1, h, config_.rms_norm_eps, last, nullptr);
    head_->forward(last, 1, logits_.data(), scratch_, nullptr);
    gpu::copy_to_host(logits, logits_.data(), logits_.bytes(), nullptr);
  }

 private:
  ModelConfig config_;
  const model::LlamaModel& ends_;
  DeviceEmbedding embedding_;
  std::vector<gpu::GpuDecoderLayer> layers_;
  std::vector<gpu::DeviceLayerCache> caches_;
  std::unique_ptr<gpu::DeviceLinear> head_;
  gpu::DeviceArray<float> norm_, logits_, states_;
  gpu::DeviceArray<uint16_t> scratch_;
};

}  // namespace

std::unique_ptr<DecoderBackend> make_cuda_decoder_backend(const ModelConfig& config,
                                                          int cuda_device) {
  return std::make_unique<CudaDecoderBackend>(config, cuda_device);
}

std::unique_ptr<DecodeBackend> make_cuda_decode_backend(
    const model::LlamaModel& ends, const std::vector<model::DecoderLayer>& layers, int64_t capacity,
    int cuda_device) {
  return std::make_unique<CudaDecodeBackend>(ends, layers, capacity, cuda_device);
}

#else

bool cuda_backend_built() {
  return false;
}

std::unique_ptr<DecoderBackend> make_cuda_decoder_backend(const ModelConfig&, int cuda_device) {
  fail(ErrorKind::kUsage, "CUDA device {} requested, but this skim-dist was built without CUDA",
       cuda_device);
}

std::unique_ptr<DecodeBackend> make_cuda_decode_backend(const model::LlamaModel&,
                                                        const std::vector<model::DecoderLayer>&,
                                                        int64_t, int cuda_device) {
  fail(ErrorKind::kUsage, "CUDA device {} requested, but this skim-dist was built without CUDA",
       cuda_device);
}

#endif

}  // namespace skim::pipeline
