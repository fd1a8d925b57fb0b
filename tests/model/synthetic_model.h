#pragma once
// A small random LLaMA model held in memory behind the ModelSource interface, for tests that must
// not depend on files: every tensor in Hugging Face naming and layout, and a one-token-per-byte
// tokenizer (id = byte % vocab).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/model_source.h"

namespace skim::testing {

struct SyntheticSpec {
  int64_t layers = 2;
  int64_t hidden = 64;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  int64_t ffn = 96;
  int64_t vocab = 100;
  int64_t max_positions = 512;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tied = false;
  bool attention_bias = false;
  bool add_bos = false;
  uint32_t seed = 1;
};

class SyntheticSource final : public io::ModelSource {
 public:
  explicit SyntheticSource(const SyntheticSpec& spec);

  const ModelConfig& config() const override { return config_; }
  bool has_tensor(const std::string& name) const override;
  Tensor load(const std::string& name, const std::vector<int64_t>& expected_shape) const override;
  std::unique_ptr<io::Tokenizer> tokenizer() const override;
  std::string path() const override { return "<synthetic>"; }

  const Tensor& tensor(const std::string& name) const;  // direct access for reference code
  void drop_tensor(const std::string& name) { tensors_.erase(name); }  // for error tests
  void set_tensor(const std::string& name, Tensor t) { tensors_[name] = std::move(t); }

 private:
  ModelConfig config_;
  bool add_bos_;
  std::map<std::string, Tensor> tensors_;
};

}  // namespace skim::testing
