#include "src/pipeline/quantize_options.h"

namespace skim::pipeline {

const char* method_name(Method m) {
  switch (m) {
    case Method::kSkim:
      return "skim";
    case Method::kKmeans:
      return "kmeans";
    case Method::kGptq:
      return "gptq";
    case Method::kRtn:
      return "rtn";
    case Method::kSlim:
      return "slim";
    case Method::kClaq:
      return "claq";
  }
  return "?";
}

const char* allocation_name(Allocation a) {
  return a == Allocation::kLayer ? "layer" : "global";
}

const char* global_weights_name(GlobalWeights w) {
  return w == GlobalWeights::kKl ? "kl" : "energy";
}

const char* propagation_name(Propagation p) {
  return p == Propagation::kFp ? "fp" : "quantized";
}

const char* lut_entries_name(quant::LutEntries e) {
  return e == quant::LutEntries::kQ8 ? "q8" : e == quant::LutEntries::kD8 ? "d8" : "f16";
}

}  // namespace skim::pipeline
