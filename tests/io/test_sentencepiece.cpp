// SentencePiece loading: a small model trained inside the test with the SentencePiece trainer
// (no downloaded file), round trips through it, and corrupt files.
#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "io/tokenizer.h"
#include "src/core/error.h"

namespace skim::io {
namespace {

namespace fs = std::filesystem;

class SentencePiece : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("skim_spm_" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    const std::string corpus_path = (*dir_ / "corpus.txt").string();
    std::ifstream in(SKIM_SOURCE_DIR "/data/text/prideprejudice.txt", std::ios::binary);
    if (!in) return;  // SetUp reports the missing file
    std::stringstream text;
    text << in.rdbuf();
    std::ofstream(corpus_path, std::ios::binary) << text.str().substr(0, 200000);
    // Identity normalization and kept whitespace, plus byte fallback, make decode(encode(s)) == s
    // for any UTF-8 text.
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + corpus_path + " --model_prefix=" + (*dir_ / "m").string() +
        " --vocab_size=600 --model_type=bpe --character_coverage=1.0 --byte_fallback=true"
        " --normalization_rule_name=identity --remove_extra_whitespaces=false"
        " --split_by_whitespace=true --minloglevel=2");
    train_error_ = new std::string(status.ok() ? "" : status.ToString());
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete train_error_;
  }
  void SetUp() override {
    ASSERT_NE(train_error_, nullptr)
        << SKIM_SOURCE_DIR "/data/text/prideprejudice.txt is missing: run scripts/fetch_data.sh";
    ASSERT_EQ(*train_error_, "") << "training the test model failed";
  }
  static std::string model_path() { return (*dir_ / "m.model").string(); }

  static fs::path* dir_;
  static std::string* train_error_;
};

fs::path* SentencePiece::dir_ = nullptr;
std::string* SentencePiece::train_error_ = nullptr;

TEST_F(SentencePiece, LoadsTrainedModel) {
  const auto tok = load_sentencepiece(model_path());
  EXPECT_EQ(tok->vocab_size(), 600);
  // The trainer's defaults: <unk> 0, <s> 1, </s> 2.
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->add_bos());
}

TEST_F(SentencePiece, RoundTrips) {
  const auto tok = load_sentencepiece(model_path());
  const std::vector<std::string> texts = {
      "It is a truth universally acknowledged",
      "Accents: àéîõü ñ ç",
      "中文字符 日本語",
      "emoji 🤗🚀",
      "runs   of\t\twhitespace",
      "digits 0123456789",
      "two\nlines",
  };
  for (const std::string& text : texts) {
    const std::vector<int32_t> ids = tok->encode(text);
    ASSERT_FALSE(ids.empty()) << text;
    for (int32_t id : ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, tok->vocab_size());
    }
    EXPECT_EQ(tok->decode(ids), text);
  }
  // A frequent phrase from the training text takes fewer pieces than one per character.
  const std::string common = "Elizabeth and Mr. Darcy";
  EXPECT_LT(tok->encode(common).size(), common.size() / 2);
}

TEST_F(SentencePiece, CorruptOrMissingFileIsBadInput) {
  const std::string corrupt = (*dir_ / "corrupt.model").string();
  std::ofstream(corrupt, std::ios::binary) << "this is not a protobuf \x01\x02\x03";
  const std::string truncated = (*dir_ / "truncated.model").string();
  {
    std::ifstream in(model_path(), std::ios::binary);
    std::stringstream all;
    all << in.rdbuf();
    std::ofstream(truncated, std::ios::binary) << all.str().substr(0, all.str().size() / 2);
  }
  for (const std::string& path : {corrupt, truncated, (*dir_ / "absent.model").string()}) {
    try {
      load_sentencepiece(path);
      ADD_FAILURE() << "loading " << path << " should fail";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBadInput) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  const auto tok = load_sentencepiece(model_path());
  EXPECT_THROW(tok->decode({600}), Error);
}

}  // namespace
}  // namespace skim::io
