// Perplexity on the synthetic model against the naive reference: windowing (tail dropped,
// max_windows), BOS, chunking and micro-batching invariance, and the error cases.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "src/core/error.h"
#include "src/pipeline/perplexity.h"
#include "tests/model/naive_llama.h"

namespace skim::testing {
namespace {

// A text whose bytes map to varied token ids under the byte tokenizer.
std::string sample_text(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>('!' + (i * 7 + i / 3) % 90));
  return s;
}

// Naive perplexity of the byte-tokenized text: the same protocol written out directly.
double naive_perplexity(const SyntheticSource& src, const std::string& text, int64_t seq,
                        int64_t windows, bool bos) {
  std::vector<int32_t> ids;
  if (bos) ids.push_back(1);
  for (unsigned char ch : text) ids.push_back(static_cast<int32_t>(ch % src.config().vocab_size));
  double sum = 0;
  for (int64_t w = 0; w < windows; ++w)
    sum += naive_nll_sum(src,
                         std::vector<int32_t>(ids.begin() + w * seq, ids.begin() + (w + 1) * seq));
  return std::exp(sum / static_cast<double>(windows * (seq - 1)));
}

ErrorKind error_kind_of(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "no error thrown";
  return ErrorKind::kInternal;
}

TEST(Perplexity, MatchesNaiveReferenceAndDropsTheTail) {
  SyntheticSpec spec;
  const SyntheticSource src(spec);
  const std::string text = sample_text(3 * 24 + 17);  // three windows and an incomplete tail
  pipeline::PerplexityOptions opt;
  opt.seq_len = 24;
  const auto r = pipeline::perplexity_of_text(src, text, "sample", opt);
  EXPECT_EQ(r.windows, 3);
  EXPECT_EQ(r.predicted_tokens, 3 * 23);
  EXPECT_EQ(r.text_tokens, 3 * 24 + 17);
  EXPECT_FALSE(r.bos_added);
  const double ref = naive_perplexity(src, text, 24, 3, false);
  EXPECT_NEAR(r.perplexity / ref, 1.0, 1e-5) << r.perplexity << " vs " << ref;
  EXPECT_NEAR(std::log(r.perplexity), r.mean_nll, 1e-12);
}

TEST(Perplexity, MaxWindowsTakesTheFirstWindows) {
  SyntheticSpec spec;
  const SyntheticSource src(spec);
  const std::string text = sample_text(5 * 16);
  pipeline::PerplexityOptions opt;
  opt.seq_len = 16;
  opt.max_windows = 2;
  const auto r = pipeline::perplexity_of_text(src, text, "sample", opt);
  EXPECT_EQ(r.windows, 2);
  EXPECT_NEAR(r.perplexity / naive_perplexity(src, text, 16, 2, false), 1.0, 1e-5);
  opt.max_windows = 50;  // more than the text holds: all of them
  EXPECT_EQ(pipeline::perplexity_of_text(src, text, "sample", opt).windows, 5);
}

TEST(Perplexity, BosIsPrependedOnceWhenTheTokenizerAsks) {
  SyntheticSpec spec;
  spec.add_bos = true;
  const SyntheticSource src(spec);
  const std::string text = sample_text(2 * 20 + 3);
  pipeline::PerplexityOptions opt;
  opt.seq_len = 20;
  const auto r = pipeline::perplexity_of_text(src, text, "sample", opt);
  EXPECT_TRUE(r.bos_added);
  EXPECT_EQ(r.text_tokens, 2 * 20 + 4);
  EXPECT_NEAR(r.perplexity / naive_perplexity(src, text, 20, 2, true), 1.0, 1e-5);
}

TEST(Perplexity, ChunkingAndMicroBatchingDoNotChangeTheResult) {
  SyntheticSpec spec;
  spec.layers = 3;
  const SyntheticSource src(spec);
  const std::string text = sample_text(7 * 32);
  pipeline::PerplexityOptions big;
  big.seq_len = 32;
  const auto a = pipeline::perplexity_of_text(src, text, "sample", big);
  pipeline::PerplexityOptions small = big;
  small.chunk_bytes = 2 * 32 * spec.hidden * 4;  // two windows per chunk: four chunks
  small.micro_batch_tokens = 1;                  // one window per layer call
  int loads = 0;
  small.layer_loader = [&](int64_t i) {
    ++loads;
    return model::DecoderLayer::load(src, i);
  };
  const auto b = pipeline::perplexity_of_text(src, text, "sample", small);
  EXPECT_EQ(loads, 4 * 3);  // each chunk streams every layer once
  EXPECT_EQ(a.windows, 7);
  EXPECT_NEAR(a.perplexity / b.perplexity, 1.0, 1e-6);
}

TEST(Perplexity, EmptyTextIsBadInputNamingTheText) {
  const SyntheticSource src(SyntheticSpec{});
  pipeline::PerplexityOptions opt;
  opt.seq_len = 16;
  std::string msg;
  EXPECT_EQ(error_kind_of([&] { pipeline::perplexity_of_text(src, "", "empty.txt", opt); }, &msg),
            ErrorKind::kBadInput);
  EXPECT_NE(msg.find("empty.txt"), std::string::npos) << msg;
}

TEST(Perplexity, TextShorterThanOneWindowIsBadInput) {
  const SyntheticSource src(SyntheticSpec{});
  pipeline::PerplexityOptions opt;
  opt.seq_len = 64;
  std::string msg;
  EXPECT_EQ(
      error_kind_of([&] { pipeline::perplexity_of_text(src, sample_text(63), "short.txt", opt); },
                    &msg),
      ErrorKind::kBadInput);
  EXPECT_NE(msg.find("short.txt"), std::string::npos) << msg;
  opt.seq_len = 63;  // exactly one window is enough
  EXPECT_EQ(pipeline::perplexity_of_text(src, sample_text(63), "short.txt", opt).windows, 1);
}

TEST(Perplexity, BadSeqLenIsUsage) {
  SyntheticSpec spec;
  spec.max_positions = 128;
  const SyntheticSource src(spec);
  pipeline::PerplexityOptions opt;
  opt.seq_len = 129;
  EXPECT_EQ(error_kind_of([&] { pipeline::perplexity_of_text(src, sample_text(500), "t", opt); }),
            ErrorKind::kUsage);
  opt.seq_len = 1;
  EXPECT_EQ(error_kind_of([&] { pipeline::perplexity_of_text(src, sample_text(500), "t", opt); }),
            ErrorKind::kUsage);
}

TEST(Perplexity, MissingTextFileIsIoError) {
  const SyntheticSource src(SyntheticSpec{});
  pipeline::PerplexityOptions opt;
  opt.seq_len = 16;
  std::string msg;
  EXPECT_EQ(
      error_kind_of([&] { pipeline::perplexity_of_file(src, "/nonexistent/text.txt", opt); }, &msg),
      ErrorKind::kIo);
  EXPECT_NE(msg.find("/nonexistent/text.txt"), std::string::npos) << msg;
}

}  // namespace
}  // namespace skim::testing
