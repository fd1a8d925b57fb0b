#include "src/core/fault_hook.h"

#include <atomic>

namespace skim {
namespace {

std::atomic<FaultHook> g_hook{nullptr};

}  // namespace

void set_fault_hook(FaultHook hook) {
  g_hook.store(hook);
}

void fault_hook(const char* stage) {
  if (const FaultHook hook = g_hook.load(std::memory_order_relaxed)) hook(stage);
}

}  // namespace skim
