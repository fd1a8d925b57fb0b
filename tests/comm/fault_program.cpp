// The failure test's job: every rank passes fault_point("hessian"), then all ranks all-reduce.
// With SKIM_FAULT_INJECT=rank=R,at=hessian rank R throws while the others wait in the
// all-reduce; run_guarded must then stop every rank. Without it the program exits 0.
#include <vector>

#include "launch/fault_injection.h"
#include "launch/runtime.h"
#include "src/core/error.h"

int main() {
  return skim::launch::run_guarded(skim::launch::CommChoice::kAuto, [](skim::launch::Runtime& rt) {
    std::vector<double> hessian(4096, 1.0);
    skim::launch::fault_point("hessian");
    rt.comm().all_reduce_sum(hessian.data(), static_cast<int64_t>(hessian.size()));
    if (hessian[0] != rt.world()) skim::fail(skim::ErrorKind::kInternal, "wrong all-reduce sum");
  });
}
