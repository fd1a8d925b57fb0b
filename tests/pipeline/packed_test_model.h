#pragma once
// A quantized model folder (src/pipeline/packed_model_dir.h layout) built in a test from a
// synthetic model, plus a ModelSource serving the same model with its linears replaced by their
// dequantized matrices: the dense reference the packed products must reproduce.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/model_source.h"
#include "src/core/tensor.h"
#include "tests/model/synthetic_model.h"

namespace skim::testing {

// The model the packed-folder tests use: 2 layers, hidden 64, 4 heads (2 kv), ffn 96, vocab 256
// (one token per byte).
SyntheticSpec packed_test_spec(uint32_t seed);

// Quantizes every linear of `source` (vocab >= 256): in even layers q/k/v/gate with RTN (4 bits,
// groups of 16) and o/up/down with K-means (3 bits, a random per-column alpha); odd layers the
// other way round. Writes skim.json, config.json, a byte-level tokenizer.json (no merges, id =
// byte), model-dense.safetensors (fp32) and the layer files into `folder` (created). Returns the
// dequantized weight of each linear by its weight name ("model.layers.0.self_attn.q_proj.weight").
std::map<std::string, Tensor> write_packed_test_model(const SyntheticSource& source,
                                                      const std::string& folder);

// `base` with some tensors replaced.
class OverrideSource final : public io::ModelSource {
 public:
  OverrideSource(const io::ModelSource& base, std::map<std::string, Tensor> overrides)
      : base_(base), overrides_(std::move(overrides)) {}
  const ModelConfig& config() const override { return base_.config(); }
  bool has_tensor(const std::string& name) const override {
    return overrides_.count(name) != 0 || base_.has_tensor(name);
  }
  Tensor load(const std::string& name, const std::vector<int64_t>& shape) const override {
    auto it = overrides_.find(name);
    return it != overrides_.end() ? it->second : base_.load(name, shape);
  }
  std::unique_ptr<io::Tokenizer> tokenizer() const override { return base_.tokenizer(); }
  std::string path() const override { return "<dequantized " + base_.path() + ">"; }

 private:
  const io::ModelSource& base_;
  std::map<std::string, Tensor> overrides_;
};

// A fresh empty folder under the system temp folder, removed by the destructor.
class TempFolder {
 public:
  explicit TempFolder(const std::string& tag);
  ~TempFolder();
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace skim::testing
