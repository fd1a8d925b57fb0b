#include "src/quant/rtn.h"

#include <algorithm>
#include <cmath>

#include "src/core/error.h"

namespace skim::quant {

UniformLayer rtn_layer_for(const Tensor& w, const RtnOptions& options) {
  if (w.ndim() != 2 || w.numel() == 0)
    fail(ErrorKind::kBadInput, "rtn: weight must be a non-empty matrix, got {}", w.shape_string());
  if (options.bits < 2 || options.bits > 8)
    fail(ErrorKind::kBadInput, "rtn: bits {} outside 2..8", options.bits);
  if (options.group_size < 0)
    fail(ErrorKind::kBadInput, "rtn: negative group size {}", options.group_size);
  for (float v : w.values())  // also keeps every fp16 scale finite (no throw inside omp)
    if (!(std::fabs(v) <= 65504.0f))
      fail(ErrorKind::kBadInput, "rtn: weight {} is non-finite or beyond the fp16 range", v);

  UniformLayer out;
  out.rows = w.dim(0);
  out.cols = w.dim(1);
  out.bits = options.bits;
  out.group_size = options.group_size >= out.cols ? 0 : options.group_size;
  out.scale.resize(static_cast<size_t>(out.rows * out.groups()));
  out.zero.resize(out.scale.size());
  out.codes.resize(static_cast<size_t>(out.rows * out.cols));
  return out;
}

UniformLayer rtn_quantize(const Tensor& w, const RtnOptions& options) {
  UniformLayer out = rtn_layer_for(w, options);
  const int64_t groups = out.groups();
  const int64_t width = out.group_size == 0 ? out.cols : out.group_size;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < out.rows; ++i) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t begin = g * width;
      const int64_t end = std::min(out.cols, begin + width);
      const float* row = w.data() + i * out.cols;
      const auto [lo, hi] = std::minmax_element(row + begin, row + end);
      const UniformParams p = uniform_params(*lo, *hi, out.bits);
      out.scale[static_cast<size_t>(i * groups + g)] = p.scale_h;
      out.zero[static_cast<size_t>(i * groups + g)] = p.zero_h;
      for (int64_t j = begin; j < end; ++j)
        out.codes[static_cast<size_t>(i * out.cols + j)] = uniform_code(row[j], p, out.bits);
    }
  }
  return out;
}

}  // namespace skim::quant
