#pragma once
// Calibration windows: `samples` windows of `seq_len` consecutive tokens drawn from the
// calibration documents with a seeded generator (SplitMix64, so the draw is the same on every
// platform and for every rank count). Windows are sample-indexed; ranks take contiguous blocks of
// samples (comm::group_block).
//
// Where windows come from: documents are taken in order into segments, and a segment ends after
// the document that makes it long enough for a window (seq_len + 1 tokens). So a long document
// is a segment of its own and its windows stay inside it (after any short documents just before
// it), while short documents are joined until they make a window; a short remainder at the end
// joins the last segment. Every
// start position of every segment is equally likely, so a document weighs by its length. One
// plain-text file is one segment.
#include <cstdint>
#include <string>
#include <vector>

namespace skim::pipeline {

struct CalibrationStream {
  std::vector<int32_t> tokens;           // every document's tokens, back to back, in order
  std::vector<int64_t> document_starts;  // [documents] offset of each document in `tokens`
  std::vector<int64_t> segment_starts;   // [segments + 1] segment boundaries in `tokens`
};

// Segments over the documents' token lists (each already with its BOS when the model wants one).
CalibrationStream join_documents(const std::vector<std::vector<int32_t>>& documents,
                                 int64_t seq_len);

struct CalibrationSet {
  int64_t seq_len = 0;
  std::vector<int64_t> starts;  // start of window s in the stream's tokens
  std::vector<int32_t> tokens;  // [samples * seq_len], window s at s * seq_len

  int64_t samples() const { return static_cast<int64_t>(starts.size()); }
};

// Throws kBadInput naming `text_name` when no segment has seq_len + 1 tokens.
CalibrationSet draw_calibration(const CalibrationStream& stream, int64_t samples, int64_t seq_len,
                                uint64_t seed, const std::string& text_name);

// For each window, the document its first token belongs to.
std::vector<int64_t> window_documents(const CalibrationSet& set, const CalibrationStream& stream);

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
