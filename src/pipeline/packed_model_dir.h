#pragma once
// The folder `skim-dist quantize` writes: a self-contained quantized model.
//
//   DIR/skim.json                    index: format name and version, method, layer count,
//                                    average bits, the files below
//   DIR/config.json                  the model's Hugging Face config
//   DIR/tokenizer.json               the model's tokenizer (Hugging Face format), or
//   DIR/tokenizer.model              a SentencePiece model, copied
//   DIR/model-dense.safetensors      packed file (io/packed_format.h) with no quantized layer:
//                                    model.embed_tokens.weight, model.norm.weight,
//                                    lm_head.weight when untied
//   DIR/layers/layer-NNNNN.safetensors  packed file of decoder layer NNNNN: its seven quantized
//                                    linears (keys "model.layers.N.self_attn.q_proj", ...) and
//                                    its two norms as dense tensors
//   DIR/report.json                  what the run did (options, times, errors, bits)
//
// One file per decoder layer keeps the writer's memory at one layer, and lets a reader stream.
#include <cstdint>
#include <string>

namespace skim::pipeline {

inline constexpr const char* kPackedIndexFile = "skim.json";
inline constexpr const char* kPackedDenseFile = "model-dense.safetensors";
inline constexpr const char* kPackedLayersFolder = "layers";

// "layers/layer-00017.safetensors"
std::string packed_layer_file(int64_t layer);
// "layers/residual-00017.safetensors": the layer's QDEC residuals (quantize --save-residual)
std::string packed_residual_file(int64_t layer);

// Whether `path` is a folder holding skim.json.
bool is_packed_model_dir(const std::string& path);

}  // namespace skim::pipeline
