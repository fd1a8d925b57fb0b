// The files of a quantize work folder that `--resume` reads back: the first byte picks the reader
// (0 state.json, 1 a tensor file of hidden states or a Hessian, 2 a finished linear
// linear-N-K.bin, 3 an error table etable-N-K.bin), the rest is the file. What a reader accepts is
// then used as the pipeline uses it.
#include "src/pipeline/checkpoint.h"
#include "src/pipeline/linear_quantizer.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace skim;
  if (size == 0) return 0;
  const uint8_t kind = data[0] % 4;
  ++data;
  --size;
  switch (kind) {
    case 0:
      fuzz::write_input(data, size, "state.json");
      fuzz::accepts([&] { (void)pipeline::read_checkpoint_state(fuzz::scratch_dir()); });
      break;
    case 1: {
      const std::string path = fuzz::write_input(data, size, "hidden-rank-0-layer-00001.bin");
      fuzz::accepts([&] { (void)pipeline::read_tensor_file(path); });
      break;
    }
    case 2:
      fuzz::accepts([&] {
        const auto q = pipeline::deserialize_quantized_linear(data, size, "linear-00001-0.bin");
        (void)pipeline::dequantize(q);
      });
      break;
    default:
      fuzz::accepts(
          [&] { (void)pipeline::deserialize_error_table(data, size, "etable-00001-0.bin"); });
      break;
  }
  return 0;
}
