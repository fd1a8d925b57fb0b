// Byte-level BPE (GPT-2 style): literal special tokens, regex pre-tokenization, merges by rank
// over the GPT-2 byte alphabet, a word cache.
#include "io/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "io/tokenizer.h"
#include "src/core/error.h"

namespace skim::io {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// LLaMA-3 and Qwen2 differ only in how many digits a number piece may hold.
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes one code point at text[i]; a malformed sequence yields its first byte alone as -1.
int64_t next_code_point(std::string_view text, size_t& i) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  size_t len = b0 < 0x80           ? 1
               : (b0 >> 5) == 0x6  ? 2
               : (b0 >> 4) == 0xE  ? 3
               : (b0 >> 3) == 0x1E ? 4
                                   : 0;
  if (len == 0 || i + len > text.size()) {
    ++i;
    return -1;
  }
  uint32_t cp = len == 1 ? b0 : b0 & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) {
      ++i;
      return -1;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  i += len;
  return cp;
}

struct ByteAlphabet {
  std::array<uint32_t, 256> code_point{};
  std::unordered_map<uint32_t, uint8_t> byte_of;

  ByteAlphabet() {
    // Printable bytes keep their value; the others are moved to 256, 257, ... in byte order.
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      code_point[b] = printable ? b : next++;
      byte_of[code_point[b]] = static_cast<uint8_t>(b);
    }
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet kAlphabet;
  return kAlphabet;
}

std::string pcre2_message(int code) {
  std::array<PCRE2_UCHAR, 256> buffer{};
  pcre2_get_error_message(code, buffer.data(), buffer.size());
  return reinterpret_cast<const char*>(buffer.data());
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

}  // namespace

std::string to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, alphabet().code_point[static_cast<unsigned char>(c)]);
  return out;
}

std::string from_byte_level(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    const int64_t cp = next_code_point(text, i);
    const auto it =
        cp < 0 ? alphabet().byte_of.end() : alphabet().byte_of.find(static_cast<uint32_t>(cp));
    if (it != alphabet().byte_of.end()) {
      out += static_cast<char>(it->second);
    } else {
      out.append(text.substr(start, i - start));
    }
  }
  return out;
}

std::vector<std::string> pre_tokenizer_regexes(const std::string& pre, const std::string& origin) {
  // Names as llama.cpp's convert script writes them to tokenizer.ggml.pre.
  if (pre.empty() || pre == "default" || pre == "gpt2" || pre == "mpt" || pre == "olmo" ||
      pre == "jais") {
    return {kGpt2Pattern};
  }
  // SmolLM2 and the StarCoder family: every digit alone (HF Digits(individual_digits=true)),
  // then the GPT-2 pattern.
  if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "command-r" ||
      pre == "codeshell" || pre == "exaone") {
    return {R"(\p{N})", kGpt2Pattern};
  }
  if (pre == "llama-bpe" || pre == "llama3" || pre == "dbrx" || pre == "smaug-bpe") {
    return {kLlama3Pattern};
  }
  if (pre == "qwen2" || pre == "stablelm2") return {kQwen2Pattern};
  fail(ErrorKind::kBadInput,
       "{}: unsupported BPE pre-tokenizer '{}' (supported: gpt2, default, smollm, starcoder, "
       "llama-bpe, qwen2 and their aliases)",
       origin, pre);
}

struct PreTokenizer::Impl {
  std::vector<pcre2_code*> codes;
  ~Impl() {
    for (pcre2_code* code : codes) pcre2_code_free(code);
  }
};

PreTokenizer::PreTokenizer(const std::vector<std::string>& patterns, const std::string& origin)
    : impl_(std::make_unique<Impl>()) {
  for (const std::string& pattern : patterns) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
    if (code == nullptr) {
      fail(ErrorKind::kBadInput, "{}: pre-tokenizer regex '{}' does not compile at {}: {}", origin,
           pattern, offset, pcre2_message(error));
    }
    impl_->codes.push_back(code);
    // Without JIT support the interpreter runs the same pattern, only slower.
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }
}

PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string_view> pieces{text};
  if (text.empty()) return {};
  // Long runs of one class (a megabyte of spaces) backtrack deeply: give JIT a growable stack.
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  if (stack != nullptr && context != nullptr) pcre2_jit_stack_assign(context, nullptr, stack);
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  struct Free {
    pcre2_jit_stack* s;
    pcre2_match_context* c;
    pcre2_match_data* d;
    ~Free() {
      pcre2_match_data_free(d);
      pcre2_match_context_free(c);
      pcre2_jit_stack_free(s);
    }
  } free_all{stack, context, data};
  if (data == nullptr) fail(ErrorKind::kInternal, "pre-tokenizer: out of memory");

  std::vector<std::string_view> next;
  for (pcre2_code* code : impl_->codes) {
    next.clear();
    next.reserve(pieces.size() * 2);
    for (std::string_view piece : pieces) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      const size_t n = piece.size();
      size_t start = 0;
      size_t emitted = 0;
      while (start < n) {
        const int rc = pcre2_match(code, subject, n, start, 0, data, context);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          fail(ErrorKind::kBadInput, "pre-tokenizer: regex match failed: {}", pcre2_message(rc));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
        const size_t begin = ov[0];
        const size_t end = ov[1];
        if (end == begin) {  // an empty match separates nothing: step one code point on
          start = begin + 1;
          while (start < n && (static_cast<unsigned char>(piece[start]) & 0xC0) == 0x80) ++start;
          continue;
        }
        if (begin > emitted) next.push_back(piece.substr(emitted, begin - emitted));
        next.push_back(piece.substr(begin, end - begin));
        emitted = end;
        start = end;
      }
      if (emitted < n) next.push_back(piece.substr(emitted));
    }
    pieces.swap(next);
  }
  return pieces;
}

namespace {

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(BpeSpec spec, const std::string& origin)
      : spec_(std::move(spec)),
        origin_(origin),
        pre_(spec_.pre_regexes.empty() ? pre_tokenizer_regexes(spec_.pre_tokenizer, origin)
                                       : spec_.pre_regexes,
             origin) {
    const auto n = static_cast<int64_t>(spec_.tokens.size());
    if (n == 0) fail(ErrorKind::kBadInput, "{}: the BPE vocabulary is empty", origin_);
    if (n > INT32_MAX) fail(ErrorKind::kBadInput, "{}: vocabulary of {} tokens", origin_, n);

    std::unordered_map<std::string_view, int32_t> vocab;
    vocab.reserve(spec_.tokens.size());
    for (int32_t id = 0; id < n; ++id) {
      if (!spec_.tokens[id].empty()) vocab.emplace(spec_.tokens[id], id);  // first one wins
    }
    for (int b = 0; b < 256; ++b) {
      const auto it = vocab.find(to_byte_level(std::string(1, static_cast<char>(b))));
      byte_ids_[b] = it == vocab.end() ? -1 : it->second;
    }

    merges_.reserve(spec_.merges.size() * 2);
    std::string joined;
    for (size_t rank = 0; rank < spec_.merges.size(); ++rank) {
      const std::string& merge = spec_.merges[rank];
      const size_t space = merge.find(' ', 1);
      if (space == std::string::npos || space + 1 >= merge.size()) {
        fail(ErrorKind::kBadInput, "{}: merge {} '{}' is not two tokens separated by a space",
             origin_, rank, merge);
      }
      const std::string_view left = std::string_view(merge).substr(0, space);
      const std::string_view right = std::string_view(merge).substr(space + 1);
      joined.assign(left).append(right);
      const auto l = vocab.find(left);
      const auto r = vocab.find(right);
      const auto m = vocab.find(joined);
      if (l == vocab.end() || r == vocab.end() || m == vocab.end()) {
        fail(ErrorKind::kBadInput, "{}: merge {} '{}' uses or makes a token not in the vocabulary",
             origin_, rank, merge);
      }
      // An earlier merge of the same pair keeps its higher priority.
      merges_.try_emplace(pair_key(l->second, r->second),
                          Merge{static_cast<int32_t>(rank), m->second});
    }

    std::vector<bool> is_special(spec_.tokens.size(), false);
    for (int32_t id : spec_.special_ids) {
      if (id < 0 || id >= n) {
        fail(ErrorKind::kBadInput, "{}: special token id {} outside the vocabulary of {}", origin_,
             id, n);
      }
      if (spec_.tokens[id].empty() || is_special[id]) continue;
      is_special[id] = true;
      specials_.push_back({spec_.tokens[id], id});
      special_start_[static_cast<unsigned char>(spec_.tokens[id][0])] = true;
    }
    // Longest first, so "<|im_start|>" wins over a shorter token that is its prefix.
    std::stable_sort(specials_.begin(), specials_.end(), [](const Special& a, const Special& b) {
      return a.text.size() > b.text.size();
    });
    for (int32_t id : {spec_.bos_id, spec_.eos_id}) {
      if (id < -1 || id >= n) {
        fail(ErrorKind::kBadInput, "{}: BOS/EOS id {} outside the vocabulary of {}", origin_, id,
             n);
      }
    }

    bytes_of_.resize(spec_.tokens.size());
    for (int32_t id = 0; id < n; ++id) {
      bytes_of_[id] = is_special[id] ? spec_.tokens[id] : from_byte_level(spec_.tokens[id]);
    }
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 1);
    size_t segment = 0;
    size_t i = 0;
    while (i < text.size()) {
      const Special* hit = nullptr;
      if (special_start_[static_cast<unsigned char>(text[i])]) {
        for (const Special& s : specials_) {
          if (text.substr(i, s.text.size()) == s.text) {
            hit = &s;
            break;
          }
        }
      }
      if (hit == nullptr) {
        ++i;
        continue;
      }
      encode_plain(text.substr(segment, i - segment), ids);
      ids.push_back(hit->id);
      i += hit->text.size();
      segment = i;
    }
    encode_plain(text.substr(segment), ids);
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) {
      if (id < 0 || id >= static_cast<int64_t>(bytes_of_.size())) {
        fail(ErrorKind::kBadInput, "{}: token id {} outside the vocabulary of {}", origin_, id,
             bytes_of_.size());
      }
      out += bytes_of_[id];
    }
    return out;
  }

  int64_t vocab_size() const override { return static_cast<int64_t>(spec_.tokens.size()); }
  int32_t bos_id() const override { return spec_.bos_id; }
  int32_t eos_id() const override { return spec_.eos_id; }
  bool add_bos() const override { return spec_.add_bos; }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  struct Special {
    std::string text;
    int32_t id;
  };

  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  void encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
    if (text.empty()) return;
    for (std::string_view word : pre_.split(text)) {
      {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        const auto it = cache_.find(word);
        if (it != cache_.end()) {
          ids.insert(ids.end(), it->second.begin(), it->second.end());
          continue;
        }
      }
      std::vector<int32_t> word_ids = merge_word(word);
      ids.insert(ids.end(), word_ids.begin(), word_ids.end());
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (cache_.size() >= kMaxCachedWords) cache_.clear();
      cache_.emplace(std::string(word), std::move(word_ids));
    }
  }

  // Applies merges lowest rank first until none applies. Words are short, so the quadratic scan
  // beats a heap; the cache absorbs repeats.
  std::vector<int32_t> merge_word(std::string_view word) const {
    std::vector<int32_t> symbols;
    symbols.reserve(word.size());
    for (char c : word) {
      // A byte without a token is dropped, as Hugging Face BPE does without an unknown token.
      const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
      if (id >= 0) symbols.push_back(id);
    }
    while (symbols.size() > 1) {
      int32_t best_rank = INT32_MAX;
      int32_t best_id = -1;
      size_t best = 0;
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        const auto it = merges_.find(pair_key(symbols[i], symbols[i + 1]));
        if (it != merges_.end() && it->second.rank < best_rank) {
          best_rank = it->second.rank;
          best_id = it->second.id;
          best = i;
        }
      }
      if (best_id < 0) break;
      symbols[best] = best_id;
      symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    }
    return symbols;
  }

  static constexpr size_t kMaxCachedWords = 1 << 18;

  BpeSpec spec_;
  std::string origin_;
  PreTokenizer pre_;
  std::array<int32_t, 256> byte_ids_{};
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<Special> specials_;
  std::array<bool, 256> special_start_{};
  std::vector<std::string> bytes_of_;  // id -> the bytes it decodes to
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec, const std::string& origin) {
  return std::make_unique<BpeTokenizer>(std::move(spec), origin);
}

}  // namespace skim::io
