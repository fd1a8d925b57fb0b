#pragma once
// A quantized model folder (src/pipeline/packed_model_dir.h) behind the io::ModelSource interface,
// plus the decoder layers built straight from the packed linears (load_layer), so eval and
// generate run a quantized model without a dense copy of its weights.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/model_source.h"
#include "io/packed_format.h"
#include "src/model/llama_layer.h"

namespace skim::pipeline {

inline constexpr const char* kPackedIndexFormat = "skim-dist";
inline constexpr int kPackedIndexVersion = 1;

class PackedModelSource final : public io::ModelSource {
 public:
  // Reads and checks skim.json (format, version, method, layer count, every named file present)
  // and config.json; throws kBadInput naming the file that is missing or wrong.
  explicit PackedModelSource(const std::string& folder);

  const ModelConfig& config() const override { return config_; }
  // Dense tensors (embedding, final norm, head, layer norms, biases) and the quantized linears'
  // weights, the latter dequantized on load (for tools that want fp32; eval and generate use
  // load_layer instead).
  bool has_tensor(const std::string& name) const override;
  Tensor load(const std::string& name, const std::vector<int64_t>& expected_shape) const override;
  std::unique_ptr<io::Tokenizer> tokenizer() const override;
  void write_tokenizer(const std::string& folder) const override;
  std::string path() const override { return folder_; }

  // Decoder layer i with its quantized linears as PackedLutLinear / PackedUniformLinear (a linear
  // stored dense stays DenseLinear). Reads the layer file once, CRCs checked. With
  // `qdec_channels` > 0 every quantized linear is a QdecLinear over its residual (read from the
  // layer's residual file) correcting min(qdec_channels, in_features) channels per token; a
  // folder without residuals is then a usage error.
  model::DecoderLayer load_layer(int64_t i, int64_t qdec_channels = 0) const;
  bool has_residuals() const { return !residual_files_.empty(); }

  const std::string& method() const { return method_; }
  double bits_per_weight() const { return bits_per_weight_; }

 private:
  std::string file_path(const std::string& relative) const;
  // The file holding `name` ("" when none): the dense file or a layer file.
  std::string file_of(const std::string& name, int64_t* layer) const;

  std::string folder_;
  ModelConfig config_;
  std::string method_;
  double bits_per_weight_ = 0.0;
  std::string dense_file_;
  std::vector<std::string> layer_files_;
  std::vector<std::string> residual_files_;  // empty, or one per layer
  std::string tokenizer_file_;
};

// Tensor `name` of a packed file's contents in fp32: a dense tensor (moved out of `m`) or a
// quantized linear's weight dequantized; kBadInput naming `file` when it holds neither.
Tensor take_tensor(io::PackedModel& m, const std::string& name, const std::string& file);

// A PackedModelSource when `path` is a quantized model folder (skim.json), else io::open_model.
std::unique_ptr<io::ModelSource> open_any_model(const std::string& path);

}  // namespace skim::pipeline
