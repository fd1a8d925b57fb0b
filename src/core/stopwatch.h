#pragma once
// Wall-clock seconds for phase timings in reports and progress lines.
#include <chrono>

namespace skim {

using SteadyClock = std::chrono::steady_clock;

inline double seconds_since(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

}  // namespace skim
