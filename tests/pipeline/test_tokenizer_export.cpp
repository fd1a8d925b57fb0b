// Tokenizer export: SmolLM2's tokenizer written from the GGUF file as a Hugging Face
// tokenizer.json (+ tokenizer_config.json) re-loads into a tokenizer giving the same ids as the
// GGUF one (itself checked against the Hugging Face `tokenizers` library in tests/io), and the
// Split-regex form of another pre-tokenizer round-trips too.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "io/model_source.h"
#include "io/tokenizer.h"
#include "io/tokenizer_export.h"
#include "src/core/error.h"
#include "tests/pipeline/packed_test_model.h"

namespace skim::io {
namespace {

namespace fs = std::filesystem;

const std::string kModelPath = SKIM_SOURCE_DIR "/data/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kEmma = SKIM_SOURCE_DIR "/data/text/emma.txt";

std::string paragraph() {
  std::ifstream in(kEmma, std::ios::binary);
  if (!in) throw std::runtime_error(kEmma + " is missing: run scripts/fetch_data.sh");
  std::stringstream buffer;
  buffer << in.rdbuf();
  // A few thousand bytes from the middle: prose, punctuation, quotes, digits-free and with.
  return buffer.str().substr(20000, 4000) + " In 1816, 42 copies; £3 10s.";
}

class TokenizerExport : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kModelPath)) << kModelPath << " is missing: run scripts/fetch_data.sh";
  }
};

TEST_F(TokenizerExport, SmolLm2GgufToTokenizerJsonGivesIdenticalIds) {
  const auto source = open_gguf_model(kModelPath);
  const testing::TempFolder dir("tok_export");
  source->write_tokenizer(dir.path());
  const auto reloaded = load_hf_tokenizer_json(dir.path() + "/tokenizer.json");
  const auto original = source->tokenizer();
  const std::string text = paragraph();
  const std::vector<int32_t> ids = original->encode(text);
  ASSERT_GT(ids.size(), 500u);
  EXPECT_EQ(reloaded->encode(text), ids);
  EXPECT_EQ(reloaded->encode("<|im_start|>user\nHi 123<|im_end|>"),
            original->encode("<|im_start|>user\nHi 123<|im_end|>"));
  EXPECT_EQ(reloaded->decode(ids), text);
  EXPECT_EQ(reloaded->vocab_size(), original->vocab_size());
  EXPECT_EQ(reloaded->bos_id(), original->bos_id());
  EXPECT_EQ(reloaded->eos_id(), original->eos_id());
  EXPECT_EQ(reloaded->add_bos(), original->add_bos());

  // The Hugging Face shape SmolLM2 itself ships: Digits(individual) then ByteLevel.
  nlohmann::json j;
  std::ifstream(dir.path() + "/tokenizer.json") >> j;
  EXPECT_EQ(j["pre_tokenizer"]["type"], "Sequence");
  EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][0]["type"], "Digits");
  EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][0]["individual_digits"], true);
  EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][1]["type"], "ByteLevel");
  EXPECT_EQ(j["model"]["merges"].size(), 48900u);
  EXPECT_EQ(j["added_tokens"].size(), 17u);
}

TEST_F(TokenizerExport, SplitRegexPreTokenizerRoundTrips) {
  const auto file = GgufFile::open(kModelPath);
  BpeSpec spec = bpe_spec_from_gguf(*file);
  spec.pre_tokenizer = "llama-bpe";  // one Split regex, then a ByteLevel without its own regex
  spec.add_bos = true;
  const auto direct = make_bpe_tokenizer(spec, "spec");
  const testing::TempFolder dir("tok_split");
  write_bpe_tokenizer(spec, dir.path());
  const auto reloaded = load_hf_tokenizer_json(dir.path() + "/tokenizer.json");
  const std::string text = paragraph() + " 123456 x=7;";
  EXPECT_EQ(reloaded->encode(text), direct->encode(text));
  EXPECT_TRUE(reloaded->add_bos());
}

TEST(TokenizerExportErrors, SourcesThatCannotExportThrowBadInput) {
  const testing::SyntheticSource synthetic(testing::SyntheticSpec{});
  const testing::TempFolder dir("tok_none");
  try {
    synthetic.write_tokenizer(dir.path());
    FAIL() << "expected kBadInput";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  }
  try {
    copy_tokenizer_files(dir.path(), dir.path());  // an empty folder has nothing to copy
    FAIL() << "expected kBadInput";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find(dir.path()), std::string::npos);
  }
  BpeSpec bad;
  bad.tokens = {"a", "b"};
  bad.merges = {"ab"};
  EXPECT_THROW(bpe_tokenizer_json(bad), Error);
}

}  // namespace
}  // namespace skim::io
