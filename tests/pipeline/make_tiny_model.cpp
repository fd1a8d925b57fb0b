// Writes a small random LLaMA model as a Hugging Face folder (config.json, model.safetensors,
// tokenizer.json with one token per byte) for the end-to-end quantize tests:
//   make_tiny_model OUT_DIR [LAYERS [HIDDEN FFN]]
// (hidden 64 and ffn 160 by default; wider ones give linears of several row units, which the
// rank tests need to split a linear over ranks).
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "io/bpe_tokenizer.h"
#include "io/hf_config.h"
#include "io/safetensors.h"
#include "io/tokenizer_export.h"
#include "src/core/error.h"
#include "tests/model/synthetic_model.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_tiny_model OUT_DIR [LAYERS [HIDDEN FFN]]\n");
    return 2;
  }
  try {
    const std::string out = argv[1];
    skim::testing::SyntheticSpec spec;
    spec.layers = argc > 2 ? std::stoi(argv[2]) : 3;
    spec.hidden = argc > 4 ? std::stoi(argv[3]) : 64;
    spec.heads = 4;
    spec.kv_heads = 2;
    spec.ffn = argc > 4 ? std::stoi(argv[4]) : 160;
    spec.vocab = 256;  // every byte is a token
    spec.seed = 7;
    const skim::testing::SyntheticSource source(spec);
    std::filesystem::create_directories(out);
    skim::io::write_hf_config(out + "/config.json", source.config());

    skim::io::SafetensorsWriter writer;
    const auto& c = source.config();
    const auto add = [&](const std::string& name) {
      writer.add(name, source.tensor(name), skim::io::StDtype::kF32);
    };
    add("model.embed_tokens.weight");
    add("model.norm.weight");
    add("lm_head.weight");
    for (int64_t l = 0; l < c.num_layers; ++l) {
      for (const char* n : {"input_layernorm", "post_attention_layernorm", "self_attn.q_proj",
                            "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
        add(fmt::format("model.layers.{}.{}.weight", l, n));
    }
    writer.write(out + "/model.safetensors");

    skim::io::BpeSpec bpe;
    for (int b = 0; b < 256; ++b)
      bpe.tokens.push_back(skim::io::to_byte_level(std::string(1, static_cast<char>(b))));
    bpe.pre_tokenizer = "gpt2";
    skim::io::write_bpe_tokenizer(bpe, out);
    return 0;
  } catch (const skim::Error& e) {
    std::fprintf(stderr, "make_tiny_model: %s\n", e.what());
    return 3;
  }
}
