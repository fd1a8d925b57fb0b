#pragma once
// A fault point for code below the pipeline (quant, model), parallel regions included: launch/
// installs its fault_point (SKIM_FAULT_INJECT, launch/fault_injection.h) here at start-up; until
// then, and in libraries used alone, it does nothing.
namespace skim {

using FaultHook = void (*)(const char* stage);

void set_fault_hook(FaultHook hook);

// Calls the installed hook (which may throw) with `stage`.
void fault_hook(const char* stage);

}  // namespace skim
