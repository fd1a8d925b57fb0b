// config.json of a Hugging Face model folder. An accepted config must survive the round trip
// through the writer unchanged (the packed folder's config.json is written that way).
#include "io/hf_config.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace skim;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ModelConfig config;
  if (!fuzz::accepts([&] { config = io::parse_hf_config(text, "config.json"); })) return 0;
  const std::string written = io::hf_config_json(config);
  ModelConfig again;
  if (!fuzz::accepts([&] { again = io::parse_hf_config(written, "written config.json"); }))
    fuzz::finding("the writer's config.json is refused", written);
  if (io::hf_config_json(again) != written)
    fuzz::finding("config.json changes in a round trip", written);
  return 0;
}
