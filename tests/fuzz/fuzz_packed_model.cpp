// A packed model file (model.safetensors of an output folder) as `eval` and `generate` read it:
// the reader's checks, then one product through every layer, which reads every byte the checks
// vouched for (a check that misses something shows up here as a sanitizer report).
#include <vector>

#include "io/packed_format.h"
#include "src/quant/packed_layer.h"
#include "src/quant/residual.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace skim;
  const std::string path = fuzz::write_input(data, size, "model.safetensors");
  io::PackedModel model;
  if (!fuzz::accepts([&] { model = io::read_packed_model(path); })) return 0;
  for (const auto& [name, layer] : model.lut_layers) {
    const std::vector<float> x(static_cast<size_t>(layer.cols), 1.0f);
    std::vector<float> y(static_cast<size_t>(layer.rows));
    quant::gemv(layer, x.data(), y.data());
  }
  for (const auto& [name, layer] : model.uniform_layers) {
    const std::vector<float> x(static_cast<size_t>(layer.cols), 1.0f);
    std::vector<float> y(static_cast<size_t>(layer.rows));
    quant::gemv(layer, x.data(), y.data());
  }
  for (const auto& [name, layer] : model.residual_layers) {  // every channel's codes read
    std::vector<float> x(static_cast<size_t>(layer.cols));
    for (size_t j = 0; j < x.size(); ++j) x[j] = static_cast<float>(j % 7) - 3.0f;
    std::vector<float> y(static_cast<size_t>(layer.rows));
    quant::ResidualCorrector(layer).apply(x.data(), 1, layer.cols, y.data());
  }
  return 0;
}
