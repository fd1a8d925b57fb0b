// Host side of cuda_check.cuh: formats the one-line message and throws.
#include "src/core/error.h"

namespace skim::kernels::gpu {

void throw_device_failure(const char* library, const char* call, int status, const char* detail,
                          const char* file, int line) {
  fail(ErrorKind::kNumeric, "{} call {} failed with status {} ({}) at {}:{}", library, call, status,
       detail, file, line);
}

void throw_invalid_argument(const char* op, const char* detail) {
  fail(ErrorKind::kInternal, "gpu {}: {}", op, detail);
}

void throw_numeric_failure(const char* op, const char* detail, long long value) {
  fail(ErrorKind::kNumeric, "gpu {}: {} ({})", op, detail, value);
}

}  // namespace skim::kernels::gpu
