// ModelSource for a Hugging Face folder: config.json, model.safetensors (or a sharded set named
// by model.safetensors.index.json), tokenizer.json or tokenizer.model.
#include <filesystem>
#include <memory>

#include "io/hf_config.h"
#include "io/model_source.h"
#include "io/safetensors.h"
#include "io/tensor_checks.h"
#include "io/tokenizer_export.h"
#include "src/core/error.h"

namespace skim::io {

namespace {

namespace fs = std::filesystem;

class HfModelSource final : public ModelSource {
 public:
  explicit HfModelSource(const std::string& folder) : folder_(folder) {
    const fs::path dir(folder);
    if (!fs::is_directory(dir)) fail(ErrorKind::kBadInput, "{}: not a folder", folder);
    const fs::path config = dir / "config.json";
    if (!fs::is_regular_file(config))
      fail(ErrorKind::kBadInput, "{}: no config.json in the model folder", folder);
    config_ = load_hf_config(config.string());
    reader_ = SafetensorsReader::open(hf_weights_path(dir.string()));
  }

  const ModelConfig& config() const override { return config_; }
  bool has_tensor(const std::string& name) const override { return reader_->has(name); }

  Tensor load(const std::string& name, const std::vector<int64_t>& expected_shape) const override {
    if (!reader_->has(name))
      fail(ErrorKind::kBadInput, "{}: tensor {} is missing from the model", folder_, name);
    const std::string file = reader_->raw(name).file;
    Tensor t = reader_->load_f32(name);
    check_loaded_tensor(t, name, expected_shape, file);
    return t;
  }

  // Read only when asked: quantizing ranks other than 0 never need the tokenizer.
  std::unique_ptr<Tokenizer> tokenizer() const override {
    const fs::path dir(folder_);
    if (fs::is_regular_file(dir / "tokenizer.json"))
      return load_hf_tokenizer_json((dir / "tokenizer.json").string());
    if (fs::is_regular_file(dir / "tokenizer.model"))
      return load_sentencepiece((dir / "tokenizer.model").string());
    fail(ErrorKind::kBadInput, "{}: no tokenizer.json or tokenizer.model in the model folder",
         folder_);
  }

  void write_tokenizer(const std::string& folder) const override {
    copy_tokenizer_files(folder_, folder);
  }

  std::string path() const override { return folder_; }

 private:
  std::string folder_;
  ModelConfig config_;
  std::unique_ptr<SafetensorsReader> reader_;
};

}  // namespace

std::string hf_weights_path(const std::string& folder) {
  const fs::path dir(folder);
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::is_regular_file(index)) return index.string();
  const fs::path single = dir / "model.safetensors";
  if (fs::is_regular_file(single)) return single.string();
  // Some repositories name their single file differently; accept exactly one.
  std::vector<fs::path> found;
  for (const fs::directory_entry& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") found.push_back(e.path());
  if (found.size() == 1) return found[0].string();
  fail(ErrorKind::kBadInput,
       "{}: no model.safetensors or model.safetensors.index.json in the model folder ({} other "
       ".safetensors files)",
       dir.string(), found.size());
}

std::unique_ptr<ModelSource> open_hf_model(const std::string& folder) {
  return std::make_unique<HfModelSource>(folder);
}

}  // namespace skim::io
