#include "src/pipeline/decoder_backend.h"

#include <algorithm>

#include "src/core/error.h"

namespace skim::pipeline {

const char* device_name(Device device) {
  return device == Device::kCuda ? "cuda" : "cpu";
}

namespace {

class CpuDecoderBackend final : public DecoderBackend {
 public:
  Device device() const override { return Device::kCpu; }
  void load_states(float* states, int64_t tokens) override {
    states_ = states;
    tokens_ = tokens;
  }
  void run_layer(const model::DecoderLayer& layer, int64_t windows, int64_t seq,
                 int64_t micro_windows) override {
    SKIM_ASSERT(states_ != nullptr && windows * seq <= tokens_);
    const int64_t hidden = layer.config().hidden_size;
    for (int64_t m = 0; m < windows; m += micro_windows) {
      const int64_t mb = std::min(micro_windows, windows - m);
      layer.forward(states_ + m * seq * hidden, mb, seq);
    }
  }
  void store_states(float* states) override { SKIM_ASSERT(states == states_); }

 private:
  float* states_ = nullptr;
  int64_t tokens_ = 0;
};

}  // namespace

std::unique_ptr<DecoderBackend> make_cpu_decoder_backend() {
  return std::make_unique<CpuDecoderBackend>();
}

}  // namespace skim::pipeline
