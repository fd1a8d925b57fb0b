#include "src/pipeline/calibration.h"

#include <algorithm>

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

CalibrationStream join_documents(const std::vector<std::vector<int32_t>>& documents,
                                 int64_t seq_len) {
  CalibrationStream s;
  s.segment_starts.push_back(0);
  const auto open_length = [&] {
    return static_cast<int64_t>(s.tokens.size()) - s.segment_starts.back();
  };
  for (const auto& doc : documents) {
    s.document_starts.push_back(static_cast<int64_t>(s.tokens.size()));
    s.tokens.insert(s.tokens.end(), doc.begin(), doc.end());
    if (open_length() >= seq_len + 1)
      s.segment_starts.push_back(static_cast<int64_t>(s.tokens.size()));
  }
  // A short remainder joins the last segment.
  const int64_t end = static_cast<int64_t>(s.tokens.size());
  if (s.segment_starts.back() != end) {
    if (s.segment_starts.size() > 1) s.segment_starts.pop_back();
    s.segment_starts.push_back(end);
  }
  return s;
}

CalibrationSet draw_calibration(const CalibrationStream& stream, int64_t samples, int64_t seq_len,
                                uint64_t seed, const std::string& text_name) {
  if (samples <= 0 || seq_len <= 0)
    fail(ErrorKind::kUsage, "calibration needs samples > 0 and seq_len > 0 (got {} and {})",
         samples, seq_len);
  // Start positions per segment, as prefix sums.
  const auto& seg = stream.segment_starts;
  std::vector<int64_t> first(seg.size(), 0);  // first[i]: draws before segment i
  int64_t longest = 0;
  for (size_t i = 0; i + 1 < seg.size(); ++i) {
    const int64_t n = seg[i + 1] - seg[i];
    longest = std::max(longest, n);
    first[i + 1] = first[i] + (n >= seq_len + 1 ? n - seq_len : 0);
  }
  const int64_t total = first.back();
  if (total == 0)
    fail(ErrorKind::kBadInput,
         "{}: calibration text has {} tokens in its longest stretch, fewer than one window of {} "
         "tokens plus one",
         text_name, longest, seq_len);
  CalibrationSet set;
  set.seq_len = seq_len;
  set.starts.reserve(static_cast<size_t>(samples));
  set.tokens.reserve(static_cast<size_t>(samples * seq_len));
  SplitMix64 rng(seed);
  for (int64_t s = 0; s < samples; ++s) {
    const auto u = static_cast<int64_t>(rng.below(static_cast<uint64_t>(total)));
    const size_t i =
        static_cast<size_t>(std::upper_bound(first.begin(), first.end(), u) - first.begin()) - 1;
    const int64_t start = seg[i] + (u - first[i]);
    set.starts.push_back(start);
    set.tokens.insert(set.tokens.end(), stream.tokens.begin() + start,
                      stream.tokens.begin() + start + seq_len);
  }
  return set;
}

std::vector<int64_t> window_documents(const CalibrationSet& set, const CalibrationStream& stream) {
  std::vector<int64_t> out;
  const auto& d = stream.document_starts;
  for (int64_t start : set.starts)
    out.push_back(std::upper_bound(d.begin(), d.end(), start) - d.begin() - 1);
  return out;
}

}  // namespace skim::pipeline
