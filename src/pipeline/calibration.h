#pragma once
// Calibration windows: `samples` windows of `seq_len` consecutive tokens drawn from the token
// stream of the calibration text with a seeded generator (SplitMix64, so the draw is the same on
// every platform and for every rank count). Windows are sample-indexed; ranks take contiguous
// blocks of samples (comm::group_block).
#include <cstdint>
#include <string>
#include <vector>

namespace skim::pipeline {

struct CalibrationSet {
  int64_t seq_len = 0;
  std::vector<int64_t> starts;  // start of window s in the token stream
  std::vector<int32_t> tokens;  // [samples * seq_len], window s at s * seq_len

  int64_t samples() const { return static_cast<int64_t>(starts.size()); }
};

// Throws kBadInput naming `text_name` when the stream has fewer than seq_len + 1 tokens.
CalibrationSet draw_calibration(const std::vector<int32_t>& stream, int64_t samples,
                                int64_t seq_len, uint64_t seed, const std::string& text_name);

// The deterministic generator behind the draw.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  // Uniform in [0, bound) without modulo bias.
  uint64_t below(uint64_t bound);

 private:
  uint64_t state_;
};

}  // namespace skim::pipeline
