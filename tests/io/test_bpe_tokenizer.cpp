// Byte-level BPE on small hand-built vocabularies whose ids can be worked out by hand, the regex
// pre-tokenizers, and tokenizer.json loading.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/bpe_tokenizer.h"
#include "io/tokenizer.h"
#include "src/core/error.h"

namespace skim::io {
namespace {

using Pieces = std::vector<std::string_view>;

void expect_error(ErrorKind kind, const std::string& needle, const std::function<void()>& body) {
  try {
    body();
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ByteLevel, KnownMappingsAndInverse) {
  EXPECT_EQ(to_byte_level(" "), "\xC4\xA0");                 // U+0120 'Ġ'
  EXPECT_EQ(to_byte_level("\n"), "\xC4\x8A");                // U+010A 'Ċ'
  EXPECT_EQ(to_byte_level("a!~"), "a!~");                    // printable ASCII is itself
  EXPECT_EQ(to_byte_level("\xC3\xA9"), "\xC3\x83\xC2\xA9");  // é's bytes C3 A9 -> "Ã©"
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(from_byte_level(to_byte_level(all)), all);
}

TEST(PreTokenizer, Gpt2Pattern) {
  const PreTokenizer pre(pre_tokenizer_regexes("gpt2", "test"), "test");
  EXPECT_EQ(pre.split("Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(pre.split("don't 12345"), (Pieces{"don", "'t", " 12345"}));
  // \s+(?!\S) leaves the last space to join the next word.
  EXPECT_EQ(pre.split("a   b"), (Pieces{"a", "  ", " b"}));
  EXPECT_EQ(pre.split("end  \n\n"), (Pieces{"end", "  \n\n"}));
  EXPECT_EQ(pre.split("x\tb"), (Pieces{"x", "\t", "b"}));
  EXPECT_EQ(pre.split("caf\xC3\xA9!?"), (Pieces{"caf\xC3\xA9", "!?"}));
  EXPECT_TRUE(pre.split("").empty());
}

TEST(PreTokenizer, SmolLmIsolatesEveryDigit) {
  const PreTokenizer pre(pre_tokenizer_regexes("smollm", "test"), "test");
  EXPECT_EQ(pre.split("a 123b"), (Pieces{"a", " ", "1", "2", "3", "b"}));
  // Unicode digits (\p{N}) too: Arabic-Indic three, Roman numeral twelve.
  EXPECT_EQ(pre.split("\xD9\xA3\xE2\x85\xBB"), (Pieces{"\xD9\xA3", "\xE2\x85\xBB"}));
}

TEST(PreTokenizer, Llama3GroupsDigitsByThree) {
  const PreTokenizer pre(pre_tokenizer_regexes("llama-bpe", "test"), "test");
  EXPECT_EQ(pre.split("1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(pre.split("I'VE seen"), (Pieces{"I", "'VE", " seen"}));
}

TEST(PreTokenizer, InvalidUtf8AndHugeRunsStayIntact) {
  const PreTokenizer pre(pre_tokenizer_regexes("gpt2", "test"), "test");
  const std::string bad = "ab\xFF\xFE cd";
  std::string joined;
  for (std::string_view p : pre.split(bad)) joined += p;
  EXPECT_EQ(joined, bad);
  const std::string spaces(200000, ' ');
  const std::string text = spaces + "x";
  const Pieces pieces = pre.split(text);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].size(), spaces.size() - 1);
  EXPECT_EQ(pieces[1], " x");
}

TEST(PreTokenizer, UnknownNameAndBadRegexAreBadInput) {
  expect_error(ErrorKind::kBadInput, "weird-pre", [] { pre_tokenizer_regexes("weird-pre", "f"); });
  expect_error(ErrorKind::kBadInput, "model.gguf",
               [] { PreTokenizer({"(unclosed"}, "model.gguf"); });
}

// Ids 0..255: the byte alphabet in byte order; then merged tokens; then one special token.
class HandVocab : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int b = 0; b < 256; ++b) spec_.tokens.push_back(to_byte_level(std::string(1, char(b))));
    // Listed by rank. "b c" outranks "a b", so "abc" becomes a + bc.
    const std::vector<std::pair<std::string, std::string>> merges = {
        {"h", "e"},        {"l", "l"}, {"he", "ll"}, {"hell", "o"},
        {"\xC4\xA0", "w"}, {"b", "c"}, {"a", "b"},   {"1", "2"},
    };
    for (const auto& [l, r] : merges) {
      id_[l + r] = static_cast<int32_t>(spec_.tokens.size());
      spec_.tokens.push_back(l + r);
      spec_.merges.push_back(l + " " + r);
    }
    id_["<|end|>"] = static_cast<int32_t>(spec_.tokens.size());
    spec_.tokens.push_back("<|end|>");
    spec_.special_ids = {id_["<|end|>"]};
    spec_.pre_tokenizer = "gpt2";
    spec_.eos_id = id_["<|end|>"];
  }
  static int32_t byte(char c) { return static_cast<unsigned char>(c); }

  BpeSpec spec_;
  std::map<std::string, int32_t> id_;
};

TEST_F(HandVocab, MergesByRank) {
  const auto tok = make_bpe_tokenizer(spec_, "hand");
  EXPECT_EQ(tok->encode("hello world"),
            (std::vector<int32_t>{id_["hello"], id_["\xC4\xA0w"], byte('o'), byte('r'), byte('l'),
                                  byte('d')}));
  EXPECT_EQ(tok->encode("abc"), (std::vector<int32_t>{byte('a'), id_["bc"]}));
  EXPECT_EQ(tok->encode("abd"), (std::vector<int32_t>{id_["ab"], byte('d')}));
  // Leftmost pair first among equal ranks: lll -> ll + l.
  EXPECT_EQ(tok->encode("lll"), (std::vector<int32_t>{id_["ll"], byte('l')}));
  // gpt2 keeps digits together, smollm splits them before merging.
  EXPECT_EQ(tok->encode("12"), (std::vector<int32_t>{id_["12"]}));
  spec_.pre_tokenizer = "smollm";
  EXPECT_EQ(make_bpe_tokenizer(spec_, "hand")->encode("12"),
            (std::vector<int32_t>{byte('1'), byte('2')}));
  EXPECT_EQ(tok->vocab_size(), 256 + 8 + 1);
  EXPECT_EQ(tok->eos_id(), id_["<|end|>"]);
  EXPECT_EQ(tok->bos_id(), -1);
}

TEST_F(HandVocab, SpecialTokensMatchLiterally) {
  const auto tok = make_bpe_tokenizer(spec_, "hand");
  const int32_t end = id_["<|end|>"];
  EXPECT_EQ(tok->encode("ab<|end|>c"), (std::vector<int32_t>{id_["ab"], end, byte('c')}));
  EXPECT_EQ(tok->encode("<|end|><|end|>"), (std::vector<int32_t>{end, end}));
  EXPECT_EQ(tok->encode("<|end|"), (std::vector<int32_t>{byte('<'), byte('|'), byte('e'), byte('n'),
                                                         byte('d'), byte('|')}));
  EXPECT_EQ(tok->decode({id_["he"], end}), "he<|end|>");
}

TEST_F(HandVocab, RoundTripsAnyBytes) {
  const auto tok = make_bpe_tokenizer(spec_, "hand");
  const std::vector<std::string> texts = {
      "plain ascii",
      "accents: \xC3\xA0\xC3\xA9\xC3\xAE\xC3\xB5\xC3\xBC",
      "CJK: \xE4\xB8\xAD\xE6\x96\x87 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
      "emoji \xF0\x9F\xA4\x97\xF0\x9F\x9A\x80",
      "  runs \t\t of   whitespace\n\n\n",
      "digits 0123456789 and 12345",
      "invalid utf-8 \xFF\xFE\xC3",
      std::string("nul \0 inside", 12),
  };
  for (const std::string& text : texts) EXPECT_EQ(tok->decode(tok->encode(text)), text);
  expect_error(ErrorKind::kBadInput, "hand", [&] { tok->decode({-1}); });
}

TEST_F(HandVocab, InconsistentSpecsAreBadInput) {
  BpeSpec missing = spec_;
  missing.merges.push_back("x zz");
  expect_error(ErrorKind::kBadInput, "x zz", [&] { make_bpe_tokenizer(missing, "m.gguf"); });
  BpeSpec no_space = spec_;
  no_space.merges.push_back("xy");
  expect_error(ErrorKind::kBadInput, "m.gguf", [&] { make_bpe_tokenizer(no_space, "m.gguf"); });
  BpeSpec bad_special = spec_;
  bad_special.special_ids.push_back(100000);
  expect_error(ErrorKind::kBadInput, "100000", [&] { make_bpe_tokenizer(bad_special, "m"); });
  BpeSpec bad_pre = spec_;
  bad_pre.pre_tokenizer = "unknown-pre";
  expect_error(ErrorKind::kBadInput, "unknown-pre", [&] { make_bpe_tokenizer(bad_pre, "m"); });
  expect_error(ErrorKind::kBadInput, "empty", [] { make_bpe_tokenizer(BpeSpec{}, "m"); });
}

// tokenizer.json files written into a fresh temporary folder.
class TokenizerJson : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("skim_tokjson_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  std::filesystem::path dir_;
};

// Byte-level pieces: Ġ is U+0120, written as a JSON escape.
const char* const kSmallJson = R"({
  "version": "1.0",
  "added_tokens": [{"id": 15, "content": "<|end|>", "special": true}],
  "normalizer": null,
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Digits", "individual_digits": true},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]},
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "vocab": {"h": 0, "e": 1, "l": 2, "o": 3, "\u0120": 4, "w": 5, "r": 6,
      "d": 7, "he": 8, "ll": 9, "hell": 10, "hello": 11, "\u0120w": 12, "1": 13, "2": 14,
      "12": 16},
    "merges": ["h e", ["l", "l"], "he ll", ["hell", "o"], "\u0120 w", "1 2"]}
})";

TEST_F(TokenizerJson, HandComputedIds) {
  const auto tok = load_hf_tokenizer_json(write("tokenizer.json", kSmallJson));
  // hello | Ġw o r l d | 1 | 2 (digits isolated, so "1 2" never applies) | <|end|>
  const std::vector<int32_t> expected = {11, 12, 3, 6, 2, 7, 13, 14, 15};
  EXPECT_EQ(tok->encode("hello world12<|end|>"), expected);
  EXPECT_EQ(tok->decode(expected), "hello world12<|end|>");
  EXPECT_EQ(tok->vocab_size(), 17);
  EXPECT_EQ(tok->bos_id(), -1);  // no tokenizer_config.json
  EXPECT_FALSE(tok->add_bos());
}

TEST_F(TokenizerJson, ConfigNamesBosAndEos) {
  write("tokenizer_config.json",
        R"({"bos_token": "hello", "eos_token": {"content": "<|end|>"}, "add_bos_token": true})");
  const auto tok = load_hf_tokenizer_json(write("tokenizer.json", kSmallJson));
  EXPECT_EQ(tok->bos_id(), 11);
  EXPECT_EQ(tok->eos_id(), 15);
  EXPECT_TRUE(tok->add_bos());
}

TEST_F(TokenizerJson, SplitRegexPreTokenizer) {
  // LLaMA-3 style: the pattern lives in a Split, ByteLevel only maps bytes. "3 4" outranks the
  // others, so without the \p{N}{1,3} split "12345" would become 12 34 5.
  const std::string json = R"({
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated",
         "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
    "model": {"type": "BPE", "vocab": {"1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "34": 5, "12": 6,
        "123": 7, "45": 8}, "merges": ["3 4", "1 2", "12 3", "4 5"]}
  })";
  const auto tok = load_hf_tokenizer_json(write("tokenizer.json", json));
  EXPECT_EQ(tok->encode("12345"), (std::vector<int32_t>{7, 8}));
}

TEST_F(TokenizerJson, BadFilesAreBadInputNamingTheFile) {
  struct BadCase {
    const char* what;
    std::string json;
  };
  const std::vector<BadCase> cases = {
      {"not valid JSON", R"({"model": {"type": "BPE", )"},
      {"model type", R"({"model": {"type": "WordPiece", "vocab": {}}})"},
      {"model.vocab", R"({"model": {"type": "BPE", "merges": []}})"},
      {"model.merges", R"({"model": {"type": "BPE", "vocab": {"a": 0}}})"},
      {"no 'model'", R"({"version": "1.0"})"},
      {"normalizer",
       R"({"normalizer": {"type": "NFC"}, "model": {"type": "BPE", "vocab": {"a": 0},
           "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}})"},
      {"pre_tokenizer",
       R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": null})"},
      {"unsupported pre-tokenizer type 'Metaspace'",
       R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
           "pre_tokenizer": {"type": "Metaspace"}})"},
      {"merge 0",
       R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [42]},
           "pre_tokenizer": {"type": "ByteLevel"}})"},
      {"not in the vocabulary",
       R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]},
           "pre_tokenizer": {"type": "ByteLevel"}})"},
  };
  for (const BadCase& c : cases) {
    const std::string path = write("tokenizer.json", c.json);
    SCOPED_TRACE(c.what);
    expect_error(ErrorKind::kBadInput, c.what, [&] { load_hf_tokenizer_json(path); });
    expect_error(ErrorKind::kBadInput, path, [&] { load_hf_tokenizer_json(path); });
  }
  const std::string missing = (dir_ / "absent.json").string();
  expect_error(ErrorKind::kIo, missing, [&] { load_hf_tokenizer_json(missing); });
}

}  // namespace
}  // namespace skim::io
