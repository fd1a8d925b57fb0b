#include "kernels/gpu/decoder_layer.h"

#include <utility>

#include "kernels/cpu/model_ops.h"
#include "kernels/cpu/qdec.h"
#include "kernels/gpu/lut_device_layout.h"
#include "kernels/gpu/model_ops.h"
#include "kernels/gpu/qdec.h"
#include "src/core/error.h"
#include "src/core/half.h"

namespace skim::kernels::gpu {

struct DeviceLinear::Residual {
  DeviceArray<uint8_t> codes;
  DeviceArray<float> scale;
  int64_t channels = 0;
  // Per-product scratch: the input on the host, the chosen channels there and on the device.
  std::vector<float> host_x;
  std::vector<int32_t> host_channels;
  DeviceArray<int32_t> device_channels;
};

void DeviceLinear::add_residual(const uint8_t* host_codes, const std::vector<float>& scale,
                                int64_t channels) {
  if (scale.size() != static_cast<size_t>(rows_) || channels < 1 || channels > cols_)
    fail(ErrorKind::kInternal, "DeviceLinear: residual of {} scales, {} channels for [{}, {}]",
         scale.size(), channels, rows_, cols_);
  auto r = std::make_shared<Residual>();
  r->codes = DeviceArray<uint8_t>(host_codes, static_cast<size_t>(cols_ * ((rows_ + 1) / 2)));
  r->scale = DeviceArray<float>(scale);
  r->channels = channels;
  residual_ = std::move(r);
}

DeviceLinear DeviceLinear::dense(const float* host_w, int64_t rows, int64_t cols, HalfType type,
                                 const std::vector<float>& bias) {
  if (!bias.empty() && bias.size() != static_cast<size_t>(rows))
    fail(ErrorKind::kInternal, "DeviceLinear: bias of {} for {} rows", bias.size(), rows);
  DeviceLinear l;
  l.rows_ = rows;
  l.cols_ = cols;
  l.type_ = type;
  std::vector<uint16_t> w(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = type == HalfType::kF16 ? float_to_half(host_w[i]) : float_to_bf16(host_w[i]);
  l.dense_ = DeviceArray<uint16_t>(w);
  if (!bias.empty()) l.bias_ = DeviceArray<float>(bias);
  return l;
}

DeviceLinear DeviceLinear::lut(const quant::PackedLutLayer& layer, const std::vector<float>& bias) {
  if (!bias.empty() && bias.size() != static_cast<size_t>(layer.rows))
    fail(ErrorKind::kInternal, "DeviceLinear: bias of {} for {} rows", bias.size(), layer.rows);
  DeviceLinear l;
  l.rows_ = layer.rows;
  l.cols_ = layer.cols;
  l.lut_ = std::make_shared<DeviceLutLayer>(to_device_layout(layer, "DeviceLinear"));
  if (!bias.empty()) l.bias_ = DeviceArray<float>(bias);
  return l;
}

void DeviceLinear::forward(const float* x, int64_t tokens, float* y, DeviceArray<uint16_t>& scratch,
                           void* stream) const {
  if (tokens <= 0) return;
  if (lut_) {
    lut_->gemm(x, tokens, y, stream);
  } else {
    const auto n = static_cast<size_t>(tokens * cols_);
    if (scratch.size() < n) scratch = DeviceArray<uint16_t>(n);
    if (type_ == HalfType::kF16) {
      to_half(x, tokens * cols_, scratch.data(), stream);
    } else {
      to_bf16(x, tokens * cols_, scratch.data(), stream);
    }
    dense_gemm(dense_.data(), type_, rows_, cols_, scratch.data(), tokens, y, stream);
  }
  if (bias_.size() > 0) add_bias(y, bias_.data(), tokens, rows_, stream);
  if (!residual_) return;
  Residual& r = *residual_;
  const int64_t k = r.channels;
  r.host_x.resize(static_cast<size_t>(tokens * cols_));
  copy_to_host(r.host_x.data(), x, r.host_x.size() * sizeof(float), stream);  // waits
  r.host_channels.resize(static_cast<size_t>(tokens * k));
  for (int64_t t = 0; t < tokens; ++t)
    kernels::top_k_channels(r.host_x.data() + t * cols_, cols_, k, r.host_channels.data() + t * k);
  if (r.device_channels.size() < r.host_channels.size())
    r.device_channels = DeviceArray<int32_t>(r.host_channels.size());
  copy_to_device(r.device_channels.data(), r.host_channels.data(),
                 r.host_channels.size() * sizeof(int32_t), stream);
  gpu::qdec_correct(r.codes.data(), r.scale.data(), rows_, cols_, x, r.device_channels.data(), k,
                    tokens, y, stream);
}

GpuDecoderLayer::GpuDecoderLayer(const ModelConfig& config, std::vector<DeviceLinear> linears,
                                 const std::vector<float>& input_norm,
                                 const std::vector<float>& post_norm)
    : config_(config), linears_(std::move(linears)), work_(7) {
  const ModelConfig& c = config_;
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  const int64_t shapes[7][2] = {{q, c.hidden_size},
                                {kv, c.hidden_size},
                                {kv, c.hidden_size},
                                {c.hidden_size, q},
                                {c.intermediate_size, c.hidden_size},
                                {c.intermediate_size, c.hidden_size},
                                {c.hidden_size, c.intermediate_size}};
  if (linears_.size() != 7)
    fail(ErrorKind::kInternal, "GpuDecoderLayer: {} linears", linears_.size());
  for (size_t i = 0; i < 7; ++i)
    if (linears_[i].rows() != shapes[i][0] || linears_[i].cols() != shapes[i][1])
      fail(ErrorKind::kInternal, "GpuDecoderLayer: linear {} is [{}, {}], expected [{}, {}]", i,
           linears_[i].rows(), linears_[i].cols(), shapes[i][0], shapes[i][1]);
  if (input_norm.size() != static_cast<size_t>(c.hidden_size) ||
      post_norm.size() != static_cast<size_t>(c.hidden_size))
    fail(ErrorKind::kInternal, "GpuDecoderLayer: norm weights must be [{}]", c.hidden_size);
  if (c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0)
    fail(ErrorKind::kInternal, "GpuDecoderLayer: {} heads over {} kv heads", c.num_heads,
         c.num_kv_heads);
  input_norm_ = DeviceArray<float>(input_norm);
  post_norm_ = DeviceArray<float>(post_norm);
  inv_freq_ = DeviceArray<float>(kernels::rope_inv_freq(c.head_dim, c.rope_theta, c.rope_scaling));
}

float* GpuDecoderLayer::buffer(int which, int64_t n) {
  DeviceArray<float>& b = work_[static_cast<size_t>(which)];
  if (b.size() < static_cast<size_t>(n)) b = DeviceArray<float>(static_cast<size_t>(n));
  return b.data();
}

void GpuDecoderLayer::linear(int which, const float* x, int64_t tokens, float* y, void* stream) {
  linears_[static_cast<size_t>(which)].forward(x, tokens, y, scratch16_, stream);
}

void GpuDecoderLayer::attention_half(float* hidden, int64_t tokens, float* k, float* v,
                                     const std::function<void(float* q, float* out)>& attend,
                                     void* stream, const DeviceCapture& capture) {
  const ModelConfig& c = config_;
  const int64_t h = c.hidden_size, q_width = c.num_heads * c.head_dim;
  float* normed = buffer(0, tokens * h);
  float* q = buffer(1, tokens * q_width);
  float* out = buffer(4, tokens * q_width);
  rmsnorm(hidden, input_norm_.data(), tokens, h, c.rms_norm_eps, normed, stream);
  if (capture) capture(0, normed, tokens, h);
  linear(0, normed, tokens, q, stream);
  linear(1, normed, tokens, k, stream);
  linear(2, normed, tokens, v, stream);
  attend(q, out);
  if (capture) capture(1, out, tokens, q_width);
  linear(3, out, tokens, normed, stream);
  add_inplace(hidden, normed, tokens * h, stream);
}

void GpuDecoderLayer::mlp_half(float* hidden, int64_t tokens, void* stream,
                               const DeviceCapture& capture) {
  const ModelConfig& c = config_;
  const int64_t h = c.hidden_size, ffn = c.intermediate_size;
  float* normed = buffer(0, tokens * h);
  float* gate = buffer(5, tokens * ffn);
  float* up = buffer(6, tokens * ffn);
  rmsnorm(hidden, post_norm_.data(), tokens, h, c.rms_norm_eps, normed, stream);
  if (capture) capture(2, normed, tokens, h);
  linear(4, normed, tokens, gate, stream);
  linear(5, normed, tokens, up, stream);
  silu_mul(gate, up, tokens * ffn, stream);
  if (capture) capture(3, gate, tokens, ffn);
  linear(6, gate, tokens, normed, stream);
  add_inplace(hidden, normed, tokens * h, stream);
}

void GpuDecoderLayer::forward(float* hidden, int64_t batch, int64_t seq, void* stream,
                              const DeviceCapture& capture) {
  const ModelConfig& c = config_;
  const int64_t tokens = batch * seq;
  if (tokens <= 0) return;
  const int64_t kv_width = c.num_kv_heads * c.head_dim;
  float* k = buffer(2, tokens * kv_width);
  float* v = buffer(3, tokens * kv_width);
  attention_half(
      hidden, tokens, k, v,
      [&](float* q, float* out) {
        rope_apply(q, batch, seq, c.num_heads, c.head_dim, inv_freq_.data(), stream);
        rope_apply(k, batch, seq, c.num_kv_heads, c.head_dim, inv_freq_.data(), stream);
        causal_attention(q, k, v, batch, seq, c.num_heads, c.num_kv_heads, c.head_dim, out, stream);
      },
      stream, capture);
  mlp_half(hidden, tokens, stream, capture);
}

void GpuDecoderLayer::forward_step(float* hidden, int64_t tokens, DeviceLayerCache& cache,
                                   void* stream) {
  const ModelConfig& c = config_;
  if (tokens <= 0) return;
  if (cache.length + tokens > cache.capacity)
    fail(ErrorKind::kInternal, "GpuDecoderLayer: KV cache of {} positions, {} + {} asked",
         cache.capacity, cache.length, tokens);
  const int64_t past = cache.length, kv_width = c.num_kv_heads * c.head_dim;
  // The new keys and values go straight into the cache rows after the past ones.
  float* k = cache.keys.data() + past * kv_width;
  float* v = cache.values.data() + past * kv_width;
  attention_half(
      hidden, tokens, k, v,
      [&](float* q, float* out) {
        rope_apply_at(q, tokens, past, c.num_heads, c.head_dim, inv_freq_.data(), stream);
        rope_apply_at(k, tokens, past, c.num_kv_heads, c.head_dim, inv_freq_.data(), stream);
        cached_attention(q, cache.keys.data(), cache.values.data(), tokens, past, c.num_heads,
                         c.num_kv_heads, c.head_dim, out, stream);
      },
      stream, {});
  mlp_half(hidden, tokens, stream, {});
  cache.length = past + tokens;
}

}  // namespace skim::kernels::gpu
