#include "launch/fault_injection.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "launch/logger.h"
#include "src/core/error.h"

namespace skim::launch {
namespace {

bool known_stage(std::string_view stage) {
  return std::find(kFaultStages.begin(), kFaultStages.end(), stage) != kFaultStages.end();
}

}  // namespace

FaultSpec parse_fault_spec(std::string_view text) {
  FaultSpec spec;
  bool have_rank = false;
  std::string_view rest = text;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      fail(ErrorKind::kUsage, "SKIM_FAULT_INJECT='{}': '{}' is not key=value", text, item);
    }
    const std::string_view key = item.substr(0, eq);
    const std::string_view value = item.substr(eq + 1);
    if (key == "rank") {
      if (value == "*") {
        spec.rank = -1;
      } else {
        const auto [end, ec] =
            std::from_chars(value.data(), value.data() + value.size(), spec.rank);
        if (ec != std::errc() || end != value.data() + value.size() || spec.rank < 0) {
          fail(ErrorKind::kUsage, "SKIM_FAULT_INJECT='{}': rank '{}' is not a rank or '*'", text,
               value);
        }
      }
      have_rank = true;
    } else if (key == "at") {
      if (!known_stage(value)) {
        fail(ErrorKind::kUsage, "SKIM_FAULT_INJECT='{}': unknown stage '{}' (see docs/COMM.md)",
             text, value);
      }
      spec.stage = std::string(value);
    } else if (key == "hit") {
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), spec.hit);
      if (ec != std::errc() || end != value.data() + value.size() || spec.hit < 1) {
        fail(ErrorKind::kUsage, "SKIM_FAULT_INJECT='{}': hit '{}' is not a count >= 1", text,
             value);
      }
    } else if (key == "delay") {
      const auto [end, ec] =
          std::from_chars(value.data(), value.data() + value.size(), spec.delay_s);
      if (ec != std::errc() || end != value.data() + value.size() || !(spec.delay_s > 0)) {
        fail(ErrorKind::kUsage, "SKIM_FAULT_INJECT='{}': delay '{}' is not seconds > 0", text,
             value);
      }
    } else {
      fail(ErrorKind::kUsage,
           "SKIM_FAULT_INJECT='{}': unknown key '{}' (expected rank, at, hit, delay)", text, key);
    }
  }
  if (!have_rank || spec.stage.empty()) {
    fail(ErrorKind::kUsage, "SKIM_FAULT_INJECT='{}' needs both rank=R and at=STAGE", text);
  }
  return spec;
}

const std::optional<FaultSpec>& fault_spec_from_env() {
  static const std::optional<FaultSpec> spec = []() -> std::optional<FaultSpec> {
    const char* text = std::getenv("SKIM_FAULT_INJECT");
    if (text == nullptr || *text == '\0') return std::nullopt;
    return parse_fault_spec(text);
  }();
  return spec;
}

void fault_point(const char* stage) {
  if (!known_stage(stage)) {
    fail(ErrorKind::kInternal, "fault_point('{}'): not a stage of kFaultStages", stage);
  }
  const auto& spec = fault_spec_from_env();
  if (!spec || spec->stage != stage) return;
  if (spec->rank != -1 && spec->rank != identity().rank) return;
  static std::atomic<int> reached{0};  // times this process reached the named stage (any thread)
  if (++reached < spec->hit) return;
  if (spec->delay_s > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(spec->delay_s));
    return;
  }
  fail(ErrorKind::kInternal, "injected fault at stage '{}' on {} (SKIM_FAULT_INJECT)", stage,
       rank_tag());
}

}  // namespace skim::launch
