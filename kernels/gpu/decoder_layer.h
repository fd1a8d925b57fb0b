#pragma once
// One LLaMA decoder layer on the GPU, the device twin of model::DecoderLayer::forward: RMSNorm,
// q/k/v products, RoPE, causal grouped-query attention, o product and residual add, RMSNorm,
// gate/up products, SwiGLU, down product and residual add. Activations stay fp32 on the device;
// a dense linear converts its input to fp16 / bf16 for cuBLAS (fp32 accumulation), a packed LUT
// linear reads fp32 inputs (kernels/gpu/lut_products.h). CUDA-free header; defined in
// kernels/cuda/decoder_layer.cpp.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/gpu/dense_gemm.h"
#include "kernels/gpu/device_memory.h"
#include "kernels/gpu/lut_products.h"
#include "src/core/model_config.h"
#include "src/quant/packed_layer.h"

namespace skim::kernels::gpu {

// A linear layer resident on the device: y[tokens, rows] = x[tokens, cols] W^T (+ bias).
class DeviceLinear {
 public:
  // W [rows, cols] fp32 on the host, stored as `type`.
  static DeviceLinear dense(const float* host_w, int64_t rows, int64_t cols, HalfType type,
                            const std::vector<float>& bias = {});
  // A packed LUT layer (rows 1..8 bits), products from the packed form.
  static DeviceLinear lut(const quant::PackedLutLayer& layer, const std::vector<float>& bias = {});

  // QDEC: after the product (and bias) add the 4-bit residual's correction of the `channels`
  // inputs of largest magnitude per token (twin: quant::ResidualCorrector::apply). host_codes
  // [cols][(rows + 1) / 2] and scale [rows] as quant::ResidualLayer stores them (scale in fp32);
  // the channels are chosen on the host (kernels::top_k_channels), so each product then waits
  // for its input to come back.
  void add_residual(const uint8_t* host_codes, const std::vector<float>& scale, int64_t channels);

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  // x, y device fp32; `scratch` holds the 16-bit copy of x for a dense layer (grown as needed).
  void forward(const float* x, int64_t tokens, float* y, DeviceArray<uint16_t>& scratch,
               void* stream) const;

 private:
  struct Residual;
  DeviceLinear() = default;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  HalfType type_ = HalfType::kF16;
  DeviceArray<uint16_t> dense_;          // dense weights, or empty
  std::shared_ptr<DeviceLutLayer> lut_;  // packed weights, or null
  DeviceArray<float> bias_;              // [rows] or empty
  std::shared_ptr<Residual> residual_;   // QDEC's, or null
};

// One layer's keys (rotary applied) and values on the device for positions [0, length), rows of
// kv_heads * head_dim, room for `capacity` positions (the twin of model::LayerKvCache).
struct DeviceLayerCache {
  DeviceLayerCache(int64_t capacity, int64_t kv_width)
      : keys(static_cast<size_t>(capacity * kv_width)),
        values(static_cast<size_t>(capacity * kv_width)),
        capacity(capacity) {}
  DeviceArray<float> keys, values;
  int64_t capacity = 0;
  int64_t length = 0;
};

// Called with the device input of each linear group (0: q/k/v, 1: o, 2: gate/up, 3: down, as
// model::LinearGroup), [tokens, features] fp32, valid during the call (the twin of
// model::CaptureHook).
using DeviceCapture =
    std::function<void(int group, const float* x, int64_t tokens, int64_t features)>;

class GpuDecoderLayer {
 public:
  // linears in the order q, k, v, o, gate, up, down (model::LinearKind); norms [hidden] fp32 host.
  GpuDecoderLayer(const ModelConfig& config, std::vector<DeviceLinear> linears,
                  const std::vector<float>& input_norm, const std::vector<float>& post_norm);

  // hidden [batch * seq, hidden_size] (device) is updated in place; each sequence starts at
  // position 0. Grows the layer's workspace on first use of a size; then allocation-free.
  void forward(float* hidden, int64_t batch, int64_t seq, void* stream,
               const DeviceCapture& capture = {});

  // The twin of model::forward_step: `tokens` new tokens of one sequence at positions
  // cache.length .. cache.length + tokens - 1; hidden [tokens, hidden_size] (device) is updated
  // in place and their keys and values appended to `cache` (kInternal past its capacity).
  void forward_step(float* hidden, int64_t tokens, DeviceLayerCache& cache, void* stream);

  // Linear `which` (the constructor's order) is now `linear`; the rest of the layer stays.
  void replace_linear(int which, DeviceLinear linear) {
    linears_.at(static_cast<size_t>(which)) = std::move(linear);
  }

 private:
  float* buffer(int which, int64_t n);
  void linear(int which, const float* x, int64_t tokens, float* y, void* stream);
  // Norm, q/k/v products (k and v into the given rows), `attend` (rotary and attention from q
  // into out), o product and residual add; then the MLP half and its residual add.
  void attention_half(float* hidden, int64_t tokens, float* k, float* v,
                      const std::function<void(float* q, float* out)>& attend, void* stream,
                      const DeviceCapture& capture);
  void mlp_half(float* hidden, int64_t tokens, void* stream, const DeviceCapture& capture);
  ModelConfig config_;
  std::vector<DeviceLinear> linears_;
  DeviceArray<float> input_norm_, post_norm_, inv_freq_;
  std::vector<DeviceArray<float>> work_;
  DeviceArray<uint16_t> scratch16_;
};

}  // namespace skim::kernels::gpu
