// The byte-level BPE tokenizer on SmolLM2-135M's real vocabulary (from the GGUF file) against
// token ids produced by an independent implementation, the Hugging Face `tokenizers` library.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "io/tokenizer.h"
#include "src/core/error.h"

namespace skim::io {
namespace {

const std::string kModelPath = SKIM_SOURCE_DIR "/data/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kTextDir = SKIM_SOURCE_DIR "/data/text/";

std::string read_text(const std::string& name) {
  std::ifstream in(kTextDir + name, std::ios::binary);
  if (!in) throw std::runtime_error(kTextDir + name + " is missing: run scripts/fetch_data.sh");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

class SmolLm2Tokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(kModelPath)) return;
    file_ = GgufFile::open(kModelPath).release();
    spec_ = new BpeSpec(bpe_spec_from_gguf(*file_));
    tokenizer_ = make_bpe_tokenizer(*spec_, kModelPath).release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete spec_;
    delete file_;
  }
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kModelPath))
        << kModelPath << " is missing: run scripts/fetch_data.sh";
  }

  static GgufFile* file_;
  static BpeSpec* spec_;
  static Tokenizer* tokenizer_;
};

GgufFile* SmolLm2Tokenizer::file_ = nullptr;
BpeSpec* SmolLm2Tokenizer::spec_ = nullptr;
Tokenizer* SmolLm2Tokenizer::tokenizer_ = nullptr;

// Reference ids from scripts/reference_token_ids.py: a Hugging Face `tokenizers` (0.23) BPE model
// built from this GGUF file's tokens and merges, pre-tokenizer Sequence[Digits(individual_digits=
// True), ByteLevel(add_prefix_space=False, use_regex=True)], ByteLevel decoder, the 17 control
// tokens added as special tokens; encode(text, add_special_tokens=False).ids.
struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

const std::vector<Case> kCases = {
    {"Hello world", {19556, 905}},
    {"12345", {33, 34, 35, 36, 37}},
    {"don\'t", {12420, 982}},
    {"  spaces", {216, 5600}},
    {"\n\n", {1116}},
    {"The price is $3.50, isn\'t it?",
     {504, 4319, 314, 1885, 35, 30, 37, 32, 28, 3247, 982, 357, 47}},
    {"naïve café résumé", {3546, 46494, 37366, 412, 2756, 5422, 2756}},
    {"東京は日本の首都です",
     {30679, 126, 16736, 122, 7365, 124, 23274, 115, 40993, 26453, 180, 116, 240, 180, 38466, 7365,
      117, 39958}},
    {"emoji 🤗🚀 done", {391, 33777, 15107, 114, 241, 10813, 244, 218, 2294}},
    {"<|im_start|>user\nHi there<|im_end|>", {1, 4093, 198, 26843, 665, 2}},
    {"tabs\tand\t\tmore   trailing   ", {100, 7366, 197, 397, 197, 197, 3143, 256, 35079, 333}},
    {"I\'VE we\'ll they\'RE", {57, 23, 18525, 392, 3060, 502, 23, 3256}},
    {"Ünïcödé Ωmega ß", {142, 246, 94, 25972, 83, 7466, 84, 2756, 5664, 119, 93, 9005, 5549, 249}},
    {"x = f(a, b) + 42;  // code",
     {104, 446, 275, 24, 81, 28, 278, 25, 1232, 216, 36, 34, 43, 216, 13241, 2909}},
    {"   \n  leading", {333, 3805, 2899}},
};

// The first 2000 bytes of data/text/prideprejudice.txt, same reference.
const std::vector<int32_t> kExcerptIds = {
    6886,  24662, 7485, 33460, 58,    11911, 15799, 198,   198,   3087,  12405, 33015, 16506, 198,
    7176,  216,   33,   1116,  198,   1589,  314,   253,   4569,  21902, 14494, 28,    338,   253,
    2244,  555,   281,  13932, 198,   1714,  253,   1123,  18598, 28,    1251,  325,   281,   1277,
    282,   253,   6221, 30,    198,   198,   4460,  1838,  1343,  260,   4401,  355,   5542,  282,
    715,   253,   555,  654,   325,   335,   650,   198,   7298,  9245,  253,   27315, 28,    451,
    4569,  314,   588,  876,   6450,  281,   260,   7335,  198,   1714,  260,   3990,  3168,  28,
    338,   384,   314,  2500,  260,   40253, 3501,  198,   1714,  634,   582,   355,   550,   282,
    480,   16924, 30,   198,   198,   18,    5965,  14119, 4994,  30,    22575, 305,   1627,  1137,
    650,   16305, 288,  1272,  582,   1194,  28,    476,   13671, 346,   3984,  338,   198,   62,
    4470,  4385,  4173, 314,   1303,  418,   1596,  4817,  198,   198,   14086, 30,    22575, 305,
    12028, 338,   384,  761,   441,   30,    198,   198,   18,    2596,  357,   314,   1627,  5598,
    1041,  43,    476,  1710,  10721, 30,    6880,  553,   915,   719,   1535,  28,    284,   1041,
    198,   100,   793,  549,   511,   563,   357,   1270,  198,   198,   14086, 30,    22575, 305,
    1135,  787,   2988, 30,    198,   198,   18,    6248,  346,   441,   1277,  288,   699,   617,
    553,   2473,  357,  4817,  31592, 650,   6221,  46215, 318,   30,    198,   198,   18,    79,
    2683,  79,    1277, 288,   2505,  549,   28,    284,   339,   457,   787,   27073, 288,   5364,
    357,   1270,  198,  198,   1348,  436,   23362, 2001,  30,    198,   198,   18,    4898,  28,
    957,   14119, 28,   346,   1251,  699,   28,    10721, 30,    6880,  1921,  338,   11779, 4385,
    314,   2473,  198,  1717,  253,   1805,  555,   282,   1507,  18598, 429,   260,   4081,  282,
    3996,  43,    338,  384,   2422,  198,   4488,  335,   12397, 281,   253,   10162, 769,   284,
    1876,  288,   963,  260,   1379,  28,    284,   436,   588,   1083,  198,   11074, 23332, 351,
    357,   28,    338,  384,   6454,  351,   4994,  30,    18803, 4654,  43,    338,   384,   198,
    271,   288,   1188, 13932, 1092,  7937,  5831,  28,    284,   634,   282,   650,   18231, 359,
    288,   198,   1425, 281,   260,   2291,  411,   260,   1112,  282,   1867,  2605,  1270,  198,
    198,   18,    1780, 314,   650,   1462,  4817,  198,   198,   18,    50,    274,   2292,  1270,
    198,   198,   18,   4182,  384,   7553,  355,   2244,  4817,  198,   198,   18,    16912, 17,
    20549, 28,    957,  14119, 28,    288,   325,   2090,  17,    330,   2244,  555,   282,   1507,
    18598, 43,    1876, 355,   198,   14013, 7557,  253,   713,   30,    1812,  253,   4979,  2775,
    327,   653,   5901, 6653,  198,   198,   18,    2020,  588,   47,    1073,  416,   357,   2151,
    601,   4817,  198,  198,   18,    5965,  14119, 4994,  30,    22575, 305,   1627,  12028, 650,
    6221,  28,    476,  6778,  416,   346,   325,   588,   20381, 465,   17,    1206,  198,   27250,
    699,   338,   339,  744,   3039,  282,   650,   37982, 582,   282,   601,   1270,  198,   198,
    18,    4182,  338,  650,   1157,  281,   21639, 1535,  4817,  198,   198,   18,    18725, 17,
    442,   707,   1281, 28,    638,   416,   346,   3015,  588,   17,    1249,  357,   314,   1035,
    2003,  338,   384,  198,   79,    11941, 79,    2332,  281,   2606,  351,   582,   282,   601,
    28,    284,   3472, 346,   1251,  3048,  1272,  347,   198,   25015, 347,   384,   2216,  1270,
    198,   198,   18,   57,    963,   787,   7040,  327,   338,   30,    1206,  284,   260,   5901,
    654,   685,   28,   355,   346,   654,   5091,  198,   25408, 411,   2253,  28,    527,   4012,
    523,   325,   1361, 1365,  28,    327,   347,   346,   359,   198,   292,   35012, 347,   750,
    282,   601,   28,   4994,  30,    389};

// Whole books: id count and FNV-1a 64 over the ids as little-endian int32, same reference.
struct Book {
  const char* name;
  size_t count;
  uint64_t hash;
};
const Book kBooks[] = {
    {"prideprejudice.txt", 167892, 0xb64c2c5b386b97b6ULL},
    {"emma.txt", 221850, 0x5cedf8206a7c5541ULL},
};

uint64_t fnv1a64(const std::vector<int32_t>& ids) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (int32_t id : ids) {
    const auto u = static_cast<uint32_t>(id);
    for (int k = 0; k < 4; ++k) {
      h ^= (u >> (8 * k)) & 0xFF;
      h *= 0x100000001B3ULL;
    }
  }
  return h;
}

TEST_F(SmolLm2Tokenizer, SpecFromGguf) {
  EXPECT_EQ(spec_->tokens.size(), 49152u);
  EXPECT_EQ(spec_->merges.size(), 48900u);
  EXPECT_EQ(spec_->pre_tokenizer, "smollm");
  EXPECT_EQ(spec_->bos_id, 1);
  EXPECT_EQ(spec_->eos_id, 2);
  EXPECT_FALSE(spec_->add_bos);
  std::vector<int32_t> control(17);
  for (int32_t i = 0; i < 17; ++i) control[i] = i;
  EXPECT_EQ(spec_->special_ids, control);
  EXPECT_EQ(spec_->tokens[1], "<|im_start|>");
  EXPECT_EQ(tokenizer_->vocab_size(), 49152);
  EXPECT_EQ(tokenizer_->bos_id(), 1);
  EXPECT_EQ(tokenizer_->eos_id(), 2);
}

TEST_F(SmolLm2Tokenizer, MatchesHuggingFaceIds) {
  for (const Case& c : kCases) {
    EXPECT_EQ(tokenizer_->encode(c.text), c.ids) << "text: " << c.text;
    EXPECT_EQ(tokenizer_->decode(c.ids), c.text);
  }
}

TEST_F(SmolLm2Tokenizer, MatchesHuggingFaceIdsOnExcerpt) {
  const std::string excerpt = read_text("prideprejudice.txt").substr(0, 2000);
  EXPECT_EQ(tokenizer_->encode(excerpt), kExcerptIds);
}

TEST_F(SmolLm2Tokenizer, RoundTrips) {
  const std::vector<std::string> texts = {
      "plain ASCII text.",
      "Accents: àéîõü ÀÉÎÕÜ ñ ç ø å",
      "中文字符和日本語のテキスト、한국어도",
      "emoji 👩‍👩‍👧 🏳️‍🌈 👍🏽",
      "runs   of\t\t whitespace \r\n\n\n   ",
      "digits 0123456789 ٣٤٥ ⅻ",
      "\n",
      " ",
      "<|im_start|><|im_end|><|endoftext|>",
      "a<|im_start|b",
  };
  for (const std::string& text : texts) {
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text)), text);
  }
}

TEST_F(SmolLm2Tokenizer, WholeBooksMatchHuggingFaceAndRoundTrip) {
  for (const Book& book : kBooks) {
    const std::string text = read_text(book.name);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = tokenizer_->encode(text);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(ids.size(), book.count) << book.name;
    EXPECT_EQ(fnv1a64(ids), book.hash) << book.name;
    EXPECT_EQ(tokenizer_->decode(ids), text) << book.name;
    std::printf("%s: %zu bytes, %zu tokens in %.3f s = %.0f tokens/s\n", book.name, text.size(),
                ids.size(), seconds, static_cast<double>(ids.size()) / seconds);
  }
}

// A cold tokenizer (empty word cache) on Pride and Prejudice: the speed a first document sees.
TEST_F(SmolLm2Tokenizer, EncodeSpeedColdCache) {
  const std::string text = read_text("prideprejudice.txt");
  const auto fresh = make_bpe_tokenizer(*spec_, kModelPath);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = fresh->encode(text);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(ids.size(), kBooks[0].count);
  RecordProperty("tokens_per_second", static_cast<int>(static_cast<double>(ids.size()) / seconds));
  std::printf("cold cache: %zu tokens in %.3f s = %.0f tokens/s\n", ids.size(), seconds,
              static_cast<double>(ids.size()) / seconds);
}

// The same vocabulary written as a tokenizer.json (SmolLM2's own layout: merges as pairs, control
// tokens in added_tokens, Sequence[Digits, ByteLevel]) must give the same reference ids.
TEST_F(SmolLm2Tokenizer, TokenizerJsonOfTheSameVocabMatchesHuggingFaceIds) {
  nlohmann::json vocab = nlohmann::json::object();
  for (size_t id = 0; id < spec_->tokens.size(); ++id) vocab[spec_->tokens[id]] = id;
  nlohmann::json merges = nlohmann::json::array();
  for (const std::string& m : spec_->merges) {
    const size_t space = m.find(' ');
    merges.push_back({m.substr(0, space), m.substr(space + 1)});
  }
  nlohmann::json added = nlohmann::json::array();
  for (int32_t id : spec_->special_ids) {
    added.push_back({{"id", id}, {"content", spec_->tokens[id]}, {"special", true}});
  }
  const nlohmann::json root = {
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Digits"}, {"individual_digits", true}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
  const auto dir =
      std::filesystem::temp_directory_path() / ("skim_smollm2_json_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "tokenizer.json").string();
  std::ofstream(path) << root.dump();
  const auto tok = load_hf_tokenizer_json(path);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(tok->vocab_size(), 49152);
  for (const Case& c : kCases) EXPECT_EQ(tok->encode(c.text), c.ids) << "text: " << c.text;
  EXPECT_EQ(tok->encode(read_text("prideprejudice.txt").substr(0, 2000)), kExcerptIds);
}

TEST_F(SmolLm2Tokenizer, DecodeRejectsOutOfRangeIds) {
  try {
    tokenizer_->decode({5, 49152});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find("49152"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace skim::io
