#include "launch/qdec_option.h"

#include "src/core/error.h"

namespace skim::launch {

void add_qdec_option(CLI::App& cmd, int64_t& channels) {
  cmd.add_option("--qdec", channels,
                 "QDEC: add each quantized linear's stored residual for the K input channels of "
                 "largest magnitude at every token (a folder quantized with --save-residual; 0: "
                 "off)");
}

void check_qdec(int64_t channels, const pipeline::PackedModelSource* packed,
                const std::string& model) {
  if (channels < 0) fail(ErrorKind::kUsage, "--qdec {}: need K >= 0", channels);
  if (channels == 0) return;
  if (packed == nullptr)
    fail(ErrorKind::kUsage, "--qdec: {} is not a quantized folder (quantize --save-residual)",
         model);
  if (!packed->has_residuals())
    fail(ErrorKind::kUsage, "--qdec: {} has no residuals (quantize with --save-residual)", model);
}

}  // namespace skim::launch
