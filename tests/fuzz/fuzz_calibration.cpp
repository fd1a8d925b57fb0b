// Calibration data as --calib reads it from JSON Lines: one document per line, field "text".
#include "io/calibration_documents.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace skim;
  const std::string path = fuzz::write_input(data, size, "calib.jsonl");
  fuzz::accepts([&] {
    const auto docs = io::read_calibration_documents(path);
    if (docs.format != "jsonl" || docs.documents.empty())
      fuzz::finding("JSON Lines read as something else", docs.format);
  });
  return 0;
}
