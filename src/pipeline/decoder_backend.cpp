#include "src/pipeline/decoder_backend.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/model_ops.h"
#include "src/core/error.h"
#include "src/model/kv_cache.h"
#include "src/pipeline/exact_hessian.h"

namespace skim::pipeline {

const char* device_name(Device device) {
  return device == Device::kCuda ? "cuda" : "cpu";
}

namespace {

class CpuDecoderBackend final : public DecoderBackend {
 public:
  void load_states(float* states, int64_t tokens) override {
    states_ = states;
    tokens_ = tokens;
  }
  void embed_states(const model::LlamaModel& ends, const int32_t* tokens, int64_t count) override {
    embedded_.resize(static_cast<size_t>(count * ends.config().hidden_size));
    ends.embed(tokens, count, embedded_.data());
    load_states(embedded_.data(), count);
  }
  void set_layer(const model::DecoderLayer& layer) override { layer_ = &layer; }
  void update_linear(const model::DecoderLayer& layer, model::LinearKind) override {
    SKIM_ASSERT(&layer == layer_);
  }
  void run_layer(int64_t windows, int64_t seq, int64_t micro_windows,
                 const model::CaptureHook& capture) override {
    SKIM_ASSERT(states_ != nullptr && layer_ != nullptr && windows * seq <= tokens_);
    const int64_t hidden = layer_->config().hidden_size;
    for (int64_t m = 0; m < windows; m += micro_windows) {
      const int64_t mb = std::min(micro_windows, windows - m);
      layer_->forward(states_ + m * seq * hidden, mb, seq, capture);
    }
  }
  void store_states(float* states) override {
    if (states == states_) return;  // the caller's buffer holds them already
    SKIM_ASSERT(states_ == embedded_.data());
    std::copy(embedded_.begin(), embedded_.end(), states);
  }

  std::vector<double> window_bounds(int64_t windows, int64_t seq) override {
    SKIM_ASSERT(states_ != nullptr && layer_ != nullptr && windows * seq <= tokens_);
    const int64_t step = seq * layer_->config().hidden_size;
    std::vector<double> bounds(model::kLinearGroupCount, 0.0);
    std::vector<float> one(static_cast<size_t>(step));  // a copy: the states stay
    for (int64_t w = 0; w < windows; ++w) {
      std::copy_n(states_ + w * step, step, one.data());
      layer_->forward(one.data(), 1, seq,
                      [&](model::LinearGroup g, const float* x, int64_t tokens, int64_t cols) {
                        auto& b = bounds[static_cast<size_t>(g)];
                        b = std::max(b, sample_bound(x, tokens, cols));
                      });
    }
    return bounds;
  }

  std::vector<Tensor> window_hessians(int64_t windows, int64_t seq,
                                      const std::vector<int64_t>& widths,
                                      const std::vector<double>& bounds, int64_t total_samples,
                                      comm::Communicator& comm) override {
    SKIM_ASSERT(widths.size() == bounds.size());
    std::vector<ExactHessian> acc;
    for (size_t g = 0; g < widths.size(); ++g)
      acc.emplace_back(widths[g], bounds[g], total_samples);
    run_layer(windows, seq, 1, [&](model::LinearGroup g, const float* x, int64_t tokens, int64_t) {
      SKIM_ASSERT(tokens == seq);
      acc[static_cast<size_t>(g)].add_samples(x, 1, seq);
    });
    std::vector<Tensor> h;
    for (auto& a : acc) h.push_back(a.reduce(comm, seq));
    return h;
  }
  double window_nll(const model::LlamaModel& ends, const int32_t* tokens, int64_t windows,
                    int64_t seq) override {
    SKIM_ASSERT(states_ != nullptr && windows * seq <= tokens_ && seq >= 2);
    const int64_t hidden = ends.config().hidden_size, vocab = ends.config().vocab_size;
    ends.final_norm(states_, windows * seq);
    // Logits of up to 512 rows at a time: [512, vocab] floats, not [tokens, vocab].
    const int64_t chunk = std::min<int64_t>(seq - 1, 512);
    std::vector<float> logits(static_cast<size_t>(chunk * vocab));
    std::vector<double> nll(static_cast<size_t>(chunk));
    double sum = 0.0;
    for (int64_t w = 0; w < windows; ++w) {
      for (int64_t r0 = 0; r0 < seq - 1; r0 += chunk) {
        const int64_t rows = std::min(chunk, seq - 1 - r0);
        ends.logits(states_ + (w * seq + r0) * hidden, rows, logits.data());
        kernels::log_softmax_nll(logits.data(), rows, vocab, tokens + w * seq + r0 + 1, nll.data());
        for (int64_t r = 0; r < rows; ++r) sum += nll[static_cast<size_t>(r)];
      }
    }
    return sum;
  }

  void reference_log_probs(const model::LlamaModel& ends) override {
    const int64_t vocab = ends.config().vocab_size;
    reference_.assign(static_cast<size_t>(tokens_ * vocab), 0.0f);
    for_head_chunks(ends, [&](int64_t t0, int64_t rows, const float* logits) {
      kernels::log_softmax(logits, rows, vocab, reference_.data() + t0 * vocab);
    });
  }

  double kl_to_reference(const model::LlamaModel& ends) override {
    const int64_t vocab = ends.config().vocab_size;
    SKIM_ASSERT(reference_.size() == static_cast<size_t>(tokens_ * vocab));
    std::vector<double> kl(static_cast<size_t>(kHeadRows));
    double sum = 0.0;
    for_head_chunks(ends, [&](int64_t t0, int64_t rows, const float* logits) {
      kernels::kl_divergence(reference_.data() + t0 * vocab, logits, rows, vocab, kl.data());
      for (int64_t r = 0; r < rows; ++r) sum += kl[static_cast<size_t>(r)];
    });
    return sum;
  }

 private:
  // Tokens whose logits are held at once at the head of the sensitivity pass.
  static constexpr int64_t kHeadRows = 64;

  // Final norm of the resident states, then fn(first token, rows, logits) in blocks of kHeadRows.
  template <typename Fn>
  void for_head_chunks(const model::LlamaModel& ends, Fn&& fn) {
    const int64_t hidden = ends.config().hidden_size, vocab = ends.config().vocab_size;
    ends.final_norm(states_, tokens_);
    std::vector<float> logits(static_cast<size_t>(kHeadRows * vocab));
    for (int64_t t0 = 0; t0 < tokens_; t0 += kHeadRows) {
      const int64_t rows = std::min(kHeadRows, tokens_ - t0);
      ends.logits(states_ + t0 * hidden, rows, logits.data());
      fn(t0, rows, logits.data());
    }
  }

  std::vector<float> reference_;  // [tokens, vocab] log-probabilities
  std::vector<float> embedded_;   // embed_states' buffer
  float* states_ = nullptr;
  int64_t tokens_ = 0;
  const model::DecoderLayer* layer_ = nullptr;
};

class CpuDecodeBackend final : public DecodeBackend {
 public:
  CpuDecodeBackend(const model::LlamaModel& ends, const std::vector<model::DecoderLayer>& layers,
                   int64_t capacity)
      : ends_(ends), layers_(layers), cache_(ends.config(), capacity) {}

  void step(const int32_t* ids, int64_t count, float* logits) override {
    const int64_t h = ends_.config().hidden_size;
    std::vector<float> states(static_cast<size_t>(count * h));
    ends_.embed(ids, count, states.data());
    for (size_t l = 0; l < layers_.size(); ++l)
      model::forward_step(layers_[l], cache_.inv_freq(), cache_.layer(static_cast<int64_t>(l)),
                          states.data(), count);
    float* last = states.data() + (count - 1) * h;
    ends_.final_norm(last, 1);
    ends_.logits(last, 1, logits);
  }

 private:
  const model::LlamaModel& ends_;
  const std::vector<model::DecoderLayer>& layers_;
  model::KvCache cache_;
};

}  // namespace

std::unique_ptr<DecoderBackend> make_cpu_decoder_backend() {
  return std::make_unique<CpuDecoderBackend>();
}

std::unique_ptr<DecoderBackend> make_decoder_backend(Device device, const ModelConfig& config,
                                                     int cuda_device) {
  return device == Device::kCuda ? make_cuda_decoder_backend(config, cuda_device)
                                 : make_cpu_decoder_backend();
}

std::unique_ptr<DecodeBackend> make_cpu_decode_backend(
    const model::LlamaModel& ends, const std::vector<model::DecoderLayer>& layers,
    int64_t capacity) {
  return std::make_unique<CpuDecodeBackend>(ends, layers, capacity);
}

}  // namespace skim::pipeline
