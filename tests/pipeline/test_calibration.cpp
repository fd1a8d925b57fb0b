// Calibration data: documents from a file, a folder or JSON Lines; segments; the window draw.
#include "src/pipeline/calibration.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "io/calibration_documents.h"
#include "src/core/error.h"
#include "tests/pipeline/packed_test_model.h"

namespace skim::pipeline {
namespace {

using testing::TempFolder;

std::vector<int32_t> iota_tokens(int64_t n, int32_t first) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

TEST(SplitMix64, MatchesTheReferenceSequence) {
  // First outputs of Vigna's splitmix64.c from state 0.
  SplitMix64 rng(0);
  EXPECT_EQ(rng.next(), 0xe220a8397b1dcdafull);
  EXPECT_EQ(rng.next(), 0x6e789e6aa1b965f4ull);
  EXPECT_EQ(rng.next(), 0x06c45d188009454full);
}

TEST(Calibration, OneDocumentIsOneSegmentDrawnUniformly) {
  const auto stream = join_documents({iota_tokens(1000, 0)}, 16);
  EXPECT_EQ(stream.segment_starts, (std::vector<int64_t>{0, 1000}));
  const auto set = draw_calibration(stream, 50, 16, 7, "text");
  SplitMix64 rng(7);  // the draw: a start uniform over the 1000 - 16 positions
  for (int64_t s = 0; s < 50; ++s) {
    const auto start = static_cast<int64_t>(rng.below(1000 - 16));
    ASSERT_EQ(set.starts[static_cast<size_t>(s)], start);
    for (int64_t t = 0; t < 16; ++t)
      ASSERT_EQ(set.tokens[static_cast<size_t>(s * 16 + t)], start + t);
  }
}

TEST(Calibration, LongDocumentsKeepTheirWindowsShortOnesAreJoined) {
  // 100 tokens (a segment), then 5 + 5 (too short) joined with the 200 after them.
  const std::vector<std::vector<int32_t>> docs = {iota_tokens(100, 0), iota_tokens(5, 1000),
                                                  iota_tokens(5, 2000), iota_tokens(200, 3000)};
  const auto stream = join_documents(docs, 16);
  EXPECT_EQ(stream.document_starts, (std::vector<int64_t>{0, 100, 105, 110}));
  EXPECT_EQ(stream.segment_starts, (std::vector<int64_t>{0, 100, 310}));
  const auto set = draw_calibration(stream, 400, 16, 3, "docs");
  const auto where = window_documents(set, stream);
  int64_t in_first = 0;
  for (size_t s = 0; s < set.starts.size(); ++s) {
    const int64_t start = set.starts[s];
    const bool first = start < 100;
    in_first += first ? 1 : 0;
    EXPECT_LE(start + 16, first ? 100 : 310) << "window " << s << " crosses its segment";
    EXPECT_EQ(where[s], first ? 0 : (start < 105 ? 1 : (start < 110 ? 2 : 3)));
  }
  // Starts are uniform over 84 + 194 positions: the first document gets about 30% of 400.
  EXPECT_GT(in_first, 80);
  EXPECT_LT(in_first, 165);
}

TEST(Calibration, ShortDocumentsJoinUntilAWindowFitsAndTheRestJoinsTheLast) {
  std::vector<std::vector<int32_t>> docs;
  for (int i = 0; i < 10; ++i) docs.push_back(iota_tokens(6, 100 * i));
  const auto stream = join_documents(docs, 16);  // a window needs 17: three documents of 6
  EXPECT_EQ(stream.segment_starts, (std::vector<int64_t>{0, 18, 36, 60}));
}

TEST(Calibration, TooFewTokensIsBadInput) {
  const auto stream = join_documents({iota_tokens(10, 0), iota_tokens(6, 0)}, 16);
  try {
    draw_calibration(stream, 4, 16, 0, "tiny.txt");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find("tiny.txt"), std::string::npos) << e.what();
  }
}

void write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

TEST(CalibrationDocuments, FileFolderAndJsonLines) {
  const TempFolder dir("calib");
  const std::filesystem::path root(dir.path());
  write(root / "plain.txt", "one document");
  auto c = io::read_calibration_documents((root / "plain.txt").string());
  EXPECT_EQ(c.format, "text");
  ASSERT_EQ(c.documents.size(), 1u);
  EXPECT_EQ(c.documents[0].text, "one document");

  std::filesystem::create_directories(root / "folder" / "sub");
  write(root / "folder" / "b.txt", "second");
  write(root / "folder" / "a.txt", "first");
  write(root / "folder" / ".hidden", "not read");
  write(root / "folder" / "sub" / "c.txt", "not read either");
  c = io::read_calibration_documents((root / "folder").string());
  EXPECT_EQ(c.format, "folder");
  ASSERT_EQ(c.documents.size(), 2u);
  EXPECT_EQ(c.documents[0].text, "first");
  EXPECT_EQ(c.documents[1].text, "second");

  write(root / "docs.jsonl", "{\"text\": \"alpha\", \"id\": 1}\n\n{\"text\": \"beta\\nline\"}\n");
  c = io::read_calibration_documents((root / "docs.jsonl").string());
  EXPECT_EQ(c.format, "jsonl");
  ASSERT_EQ(c.documents.size(), 2u);
  EXPECT_EQ(c.documents[1].text, "beta\nline");
  EXPECT_EQ(c.documents[1].name, (root / "docs.jsonl").string() + ":3");
}

TEST(CalibrationDocuments, BadJsonLinesNameTheLine) {
  const TempFolder dir("calib-bad");
  const std::filesystem::path root(dir.path());
  for (const auto& [text, line] :
       std::vector<std::pair<std::string, std::string>>{{"{\"text\": \"ok\"}\nnot json\n", ":2"},
                                                        {"{\"text\": 5}\n", ":1"},
                                                        {"[\"text\"]\n", ":1"}}) {
    write(root / "bad.jsonl", text);
    try {
      io::read_calibration_documents((root / "bad.jsonl").string());
      FAIL() << "accepted " << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
      EXPECT_NE(std::string(e.what()).find("bad.jsonl" + line), std::string::npos) << e.what();
    }
  }
  std::filesystem::create_directories(root / "empty");
  EXPECT_THROW(io::read_calibration_documents((root / "empty").string()), Error);
}

}  // namespace
}  // namespace skim::pipeline
