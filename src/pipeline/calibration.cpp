#include "src/pipeline/calibration.h"

#include "src/core/error.h"

namespace skim::pipeline {

uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t bound) {
  SKIM_ASSERT(bound > 0);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t x = next();
  while (x >= limit) x = next();
  return x % bound;
}

CalibrationSet draw_calibration(const std::vector<int32_t>& stream, int64_t samples,
                                int64_t seq_len, uint64_t seed, const std::string& text_name) {
  if (samples <= 0 || seq_len <= 0)
    fail(ErrorKind::kUsage, "calibration needs samples > 0 and seq_len > 0 (got {} and {})",
         samples, seq_len);
  const int64_t n = static_cast<int64_t>(stream.size());
  if (n < seq_len + 1)
    fail(ErrorKind::kBadInput,
         "{}: calibration text has {} tokens, fewer than one window of {} tokens plus one",
         text_name, n, seq_len);
  CalibrationSet set;
  set.seq_len = seq_len;
  set.starts.reserve(static_cast<size_t>(samples));
  set.tokens.reserve(static_cast<size_t>(samples * seq_len));
  SplitMix64 rng(seed);
  for (int64_t s = 0; s < samples; ++s) {
    const int64_t start = static_cast<int64_t>(rng.below(static_cast<uint64_t>(n - seq_len)));
    set.starts.push_back(start);
    set.tokens.insert(set.tokens.end(), stream.begin() + start, stream.begin() + start + seq_len);
  }
  return set;
}

}  // namespace skim::pipeline
