// A .safetensors file as a Hugging Face model folder or a packed model holds it: the header, every
// tensor's bytes, and the float tensors converted to fp32.
#include "io/safetensors.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace skim;
  const std::string path = fuzz::write_input(data, size, "model.safetensors");
  fuzz::accepts([&] {
    const auto reader = io::SafetensorsReader::open(path);
    (void)reader->metadata();
    for (const auto& name : reader->names()) {
      const auto view = reader->raw(name);
      if (view.bytes.size() !=
          static_cast<size_t>(shape_numel(view.shape)) * io::st_dtype_size(view.dtype))
        fuzz::finding("a tensor's bytes do not match its shape", name);
      switch (view.dtype) {
        case io::StDtype::kF32:
        case io::StDtype::kF16:
        case io::StDtype::kBF16:
        case io::StDtype::kF64:
          (void)reader->load_f32(name);
          break;
        default:
          break;
      }
    }
  });
  return 0;
}
