// GGUF reader and GGUF ModelSource on small files written by the test writer: every key-value
// type, tensors, corrupt files, and the llama.cpp Q/K row order.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <numbers>
#include <random>

#include "io/gguf.h"
#include "io/model_source.h"
#include "src/core/error.h"
#include "src/core/half.h"
#include "tests/io/gguf_test_writer.h"

namespace skim {
namespace {

namespace fs = std::filesystem;
using io::GgmlType;
using io::GgufFile;
using io::GgufValueType;
using test::ByteBuf;
using test::GgufTestWriter;

class GgufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("skim_gguf_") + info->name() + "_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  // Runs `f`, expects a kBadInput error whose message contains the file name and `needle`.
  void expect_bad_input(const std::string& path, const std::string& needle,
                        const std::function<void()>& f) {
    try {
      f();
      ADD_FAILURE() << "no error for " << path << " (expected '" << needle << "')";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBadInput) << e.what();
      EXPECT_NE(std::string(e.what()).find(fs::path(path).filename().string()), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << "'" << e.what() << "' lacks '" << needle << "'";
    }
  }
  void expect_open_fails(const std::vector<uint8_t>& bytes, const std::string& name,
                         const std::string& needle) {
    const std::string path = file(name);
    GgufTestWriter::write_bytes(path, bytes);
    expect_bad_input(path, needle, [&] { GgufFile::open(path); });
  }

  fs::path dir_;
};

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A file with one key of every type, arrays (nested too) and three tensors.
GgufTestWriter full_writer(uint32_t version) {
  GgufTestWriter w(version);
  w.add_u8("t.u8", 200);
  w.add_i8("t.i8", -100);
  w.add_u16("t.u16", 60000);
  w.add_i16("t.i16", -30000);
  w.add_u32("t.u32", 4000000000u);
  w.add_i32("t.i32", -2000000000);
  w.add_f32("t.f32", 0.15625f);
  w.add_bool("t.bool", true);
  w.add_string("t.str", "h\xc3\xa9llo");
  w.add_u64("t.u64", 1ull << 40);
  w.add_i64("t.i64", -(1ll << 50));
  w.add_f64("t.f64", 1e-300);
  w.add_string_array("t.strs", {"a", "", "\xc4\xa0the"});
  w.add_array<int32_t>("t.i32s", GgufValueType::kInt32, {1, -2, 3});
  w.add_array<uint8_t>("t.u8s", GgufValueType::kUint8, {7, 8});
  w.add_array<float>("t.f32s", GgufValueType::kFloat32, {0.5f, -2.0f});
  w.add_array<uint8_t>("t.bools", GgufValueType::kBool, {1, 0});
  {  // [[1, 2], [3]] as int16
    ByteBuf p;
    p.put<uint32_t>(static_cast<uint32_t>(GgufValueType::kArray));
    p.put<uint64_t>(2);
    p.put<uint32_t>(static_cast<uint32_t>(GgufValueType::kInt16));
    p.put<uint64_t>(2);
    p.put<int16_t>(1);
    p.put<int16_t>(2);
    p.put<uint32_t>(static_cast<uint32_t>(GgufValueType::kInt16));
    p.put<uint64_t>(1);
    p.put<int16_t>(3);
    w.add_raw("t.nested", static_cast<uint32_t>(GgufValueType::kArray), p.b);
  }
  w.add_f32_tensor("a.weight", {4, 3}, random_floats(12, 1));
  std::vector<uint8_t> f16(2 * 8);
  for (int i = 0; i < 8; ++i) {
    const uint16_t h = float_to_half(0.25f * static_cast<float>(i - 3));
    std::memcpy(f16.data() + 2 * i, &h, 2);
  }
  w.add_tensor("b.weight", {8}, static_cast<uint32_t>(GgmlType::kF16), f16);
  // One Q8_0 block: d = 0.5, qs = -16..15.
  std::vector<uint8_t> q8(34);
  const uint16_t d = float_to_half(0.5f);
  std::memcpy(q8.data(), &d, 2);
  for (int i = 0; i < 32; ++i) q8[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(i - 16));
  w.add_tensor("c.weight", {32, 1}, static_cast<uint32_t>(GgmlType::kQ8_0), q8);
  return w;
}

TEST_F(GgufTest, ReadsEveryValueTypeAndTensorInBothVersions) {
  for (uint32_t version : {2u, 3u}) {
    const std::string path = file("full_v" + std::to_string(version) + ".gguf");
    full_writer(version).write(path);
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->version(), version);
    EXPECT_EQ(f->get_int("t.u8"), 200);
    EXPECT_EQ(f->get_int("t.i8"), -100);
    EXPECT_EQ(f->get_int("t.u16"), 60000);
    EXPECT_EQ(f->get_int("t.i16"), -30000);
    EXPECT_EQ(f->get_int("t.u32"), 4000000000ll);
    EXPECT_EQ(f->get_int("t.i32"), -2000000000);
    EXPECT_EQ(f->get_float("t.f32"), 0.15625);
    EXPECT_TRUE(f->get_bool("t.bool", false));
    EXPECT_EQ(f->get_string("t.str"), "h\xc3\xa9llo");
    EXPECT_EQ(f->get_int("t.u64"), 1ll << 40);
    EXPECT_EQ(f->get_int("t.i64"), -(1ll << 50));
    EXPECT_EQ(f->get_float("t.f64"), 1e-300);
    EXPECT_EQ(f->get_float("t.i32"), -2e9);  // integers read as numbers too
    EXPECT_EQ(f->get_string_array("t.strs"), (std::vector<std::string>{"a", "", "\xc4\xa0the"}));
    EXPECT_EQ(f->get_int_array("t.i32s"), (std::vector<int64_t>{1, -2, 3}));
    EXPECT_EQ(f->get_int_array("t.u8s"), (std::vector<int64_t>{7, 8}));
    const io::GgufValue* f32s = f->find_value("t.f32s");
    ASSERT_NE(f32s, nullptr);
    EXPECT_EQ(f32s->array_type, GgufValueType::kFloat32);
    ASSERT_EQ(f32s->array.size(), 2u);
    EXPECT_EQ(f32s->array[1].f, -2.0);
    const io::GgufValue* bools = f->find_value("t.bools");
    ASSERT_NE(bools, nullptr);
    ASSERT_EQ(bools->array.size(), 2u);
    EXPECT_TRUE(bools->array[0].b);
    EXPECT_FALSE(bools->array[1].b);
    const io::GgufValue* nested = f->find_value("t.nested");
    ASSERT_NE(nested, nullptr);
    EXPECT_EQ(nested->array_type, GgufValueType::kArray);
    ASSERT_EQ(nested->array.size(), 2u);
    ASSERT_EQ(nested->array[0].array.size(), 2u);
    EXPECT_EQ(nested->array[0].array[1].i, 2);
    ASSERT_EQ(nested->array[1].array.size(), 1u);
    EXPECT_EQ(nested->array[1].array[0].i, 3);
    EXPECT_EQ(f->keys().size(), 18u);
    EXPECT_EQ(f->keys().front(), "t.u8");
    EXPECT_EQ(f->get_int("absent", 7), 7);
    EXPECT_EQ(f->get_float("absent", 2.5), 2.5);
    EXPECT_FALSE(f->get_bool("absent", false));
    EXPECT_EQ(f->alignment(), 32u);
    EXPECT_EQ(f->data_offset() % 32, 0u);

    ASSERT_EQ(f->tensors().size(), 3u);
    const auto* a = f->find_tensor("a.weight");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->ne, (std::vector<int64_t>{4, 3}));
    EXPECT_EQ(a->shape(), (std::vector<int64_t>{3, 4}));
    EXPECT_EQ(a->type, GgmlType::kF32);
    EXPECT_EQ(a->nbytes, 48u);
    const Tensor at = f->dequantize(*a);
    EXPECT_EQ(at.shape(), (std::vector<int64_t>{3, 4}));
    const auto expected = random_floats(12, 1);
    for (int i = 0; i < 12; ++i) EXPECT_EQ(at.data()[i], expected[static_cast<size_t>(i)]);

    const Tensor bt = f->dequantize(*f->find_tensor("b.weight"));
    ASSERT_EQ(bt.numel(), 8);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(bt.data()[i], 0.25f * static_cast<float>(i - 3));

    const auto* c = f->find_tensor("c.weight");
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->offset % 32, 0u);
    EXPECT_EQ(c->nbytes, 34u);
    const Tensor ct = f->dequantize(*c);
    EXPECT_EQ(ct.shape(), (std::vector<int64_t>{1, 32}));
    for (int i = 0; i < 32; ++i) EXPECT_EQ(ct.data()[i], 0.5f * static_cast<float>(i - 16));
    EXPECT_EQ(f->find_tensor("nope"), nullptr);
  }
}

TEST_F(GgufTest, HonoursCustomAlignment) {
  GgufTestWriter w;
  w.set_alignment(64);
  w.add_f32_tensor("x", {3}, {1, 2, 3});
  w.add_f32_tensor("y", {5}, {4, 5, 6, 7, 8});
  const std::string path = file("align.gguf");
  w.write(path);
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  EXPECT_EQ(f->find_tensor("y")->offset, 64u);
  EXPECT_EQ(f->dequantize(*f->find_tensor("y")).data()[4], 8.0f);
}

TEST_F(GgufTest, TypedGettersRejectWrongTypesAndMissingKeys) {
  const std::string path = file("getters.gguf");
  full_writer(3).write(path);
  auto f = GgufFile::open(path);
  expect_bad_input(path, "t.u8", [&] { f->get_string("t.u8"); });
  expect_bad_input(path, "t.str", [&] { f->get_int("t.str"); });
  expect_bad_input(path, "t.str", [&] { f->get_float("t.str"); });
  expect_bad_input(path, "t.u8", [&] { f->get_bool("t.u8", false); });
  expect_bad_input(path, "t.i32s", [&] { f->get_string_array("t.i32s"); });
  expect_bad_input(path, "t.strs", [&] { f->get_int_array("t.strs"); });
  expect_bad_input(path, "missing.key", [&] { f->get_int("missing.key"); });
}

TEST_F(GgufTest, EveryTruncationIsRejected) {
  const auto bytes = full_writer(3).bytes();
  // The last tensor ends at the end of the file, so every strict prefix is missing something.
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    SCOPED_TRACE(cut);
    const std::string path = file("trunc.gguf");
    GgufTestWriter::write_bytes(path, {bytes.begin(), bytes.begin() + static_cast<long>(cut)});
    try {
      GgufFile::open(path);
      ADD_FAILURE() << "prefix of " << cut << " bytes opened";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
      EXPECT_NE(std::string(e.what()).find("trunc.gguf"), std::string::npos) << e.what();
    }
  }
}

TEST_F(GgufTest, RejectsBadHeaders) {
  auto bytes = full_writer(3).bytes();
  auto bad_magic = bytes;
  bad_magic[0] = 'X';
  expect_open_fails(bad_magic, "magic.gguf", "not a GGUF file");
  auto v1 = bytes;
  v1[4] = 1;
  expect_open_fails(v1, "v1.gguf", "version 1");
  auto v99 = bytes;
  v99[4] = 99;
  expect_open_fails(v99, "v99.gguf", "version 99");
  auto many_tensors = bytes;
  const uint64_t huge = 1ull << 60;
  std::memcpy(many_tensors.data() + 8, &huge, 8);
  expect_open_fails(many_tensors, "tensors.gguf", "1152921504606846976 tensors");
  auto many_kv = bytes;
  std::memcpy(many_kv.data() + 16, &huge, 8);
  expect_open_fails(many_kv, "kv.gguf", "key-values");
  auto long_key = bytes;  // first key's length field right after the header
  std::memcpy(long_key.data() + 24, &huge, 8);
  expect_open_fails(long_key, "longkey.gguf", "truncated");
}

TEST_F(GgufTest, RejectsBadKeyValues) {
  {
    GgufTestWriter w;
    ByteBuf p;
    p.put<uint64_t>(1ull << 62);  // string length far past the end
    w.add_raw("s", static_cast<uint32_t>(GgufValueType::kString), p.b);
    expect_open_fails(w.bytes(), "longstr.gguf", "value of key 's'");
  }
  {
    GgufTestWriter w;
    ByteBuf p;
    p.put<uint32_t>(static_cast<uint32_t>(GgufValueType::kUint32));
    p.put<uint64_t>(1ull << 60);
    w.add_raw("arr", static_cast<uint32_t>(GgufValueType::kArray), p.b);
    expect_open_fails(w.bytes(), "longarr.gguf", "key 'arr' claims 1152921504606846976");
  }
  {
    GgufTestWriter w;
    w.add_raw("odd", 13, {0, 0, 0, 0});
    expect_open_fails(w.bytes(), "kvtype.gguf", "key 'odd' has unknown value type 13");
  }
  {
    GgufTestWriter w;
    w.add_u8("dup", 1);
    w.add_u8("dup", 2);
    expect_open_fails(w.bytes(), "dup.gguf", "duplicate key 'dup'");
  }
  {
    GgufTestWriter w;
    w.add_u32("general.alignment", 48);
    expect_open_fails(w.bytes(), "align.gguf", "general.alignment");
  }
  {
    GgufTestWriter w;
    w.add_scalar<uint8_t>("flag", GgufValueType::kBool, 7);
    expect_open_fails(w.bytes(), "bool.gguf", "key 'flag' has bool value 7");
  }
  {  // arrays nested 100 deep
    GgufTestWriter w;
    ByteBuf p;
    for (int i = 0; i < 100; ++i) {
      p.put<uint32_t>(static_cast<uint32_t>(GgufValueType::kArray));
      p.put<uint64_t>(1);
    }
    p.put<uint32_t>(static_cast<uint32_t>(GgufValueType::kUint8));
    p.put<uint64_t>(0);
    w.add_raw("deep", static_cast<uint32_t>(GgufValueType::kArray), p.b);
    expect_open_fails(w.bytes(), "deep.gguf", "key 'deep' nests arrays");
  }
}

TEST_F(GgufTest, RejectsBadTensorInfos) {
  const std::vector<uint8_t> f32x4(16, 0);
  {
    GgufTestWriter w;
    w.add_tensor("w.unknown", {4}, 99, f32x4);
    expect_open_fails(w.bytes(), "type99.gguf", "tensor 'w.unknown' has unsupported type type 99");
  }
  {
    GgufTestWriter w;
    w.add_tensor("w.iq", {256}, 16, std::vector<uint8_t>(66, 0));
    expect_open_fails(w.bytes(), "iq.gguf", "tensor 'w.iq' has unsupported type IQ2_XXS");
  }
  {
    GgufTestWriter w;
    w.add_tensor("w.dims", {1, 1, 1, 1, 4}, 0, f32x4);
    expect_open_fails(w.bytes(), "dims.gguf", "tensor 'w.dims' has 5 dimensions");
  }
  {
    GgufTestWriter w;
    w.add_tensor("w.q8", {30}, static_cast<uint32_t>(GgmlType::kQ8_0), std::vector<uint8_t>(34));
    expect_open_fails(w.bytes(), "rowlen.gguf", "tensor 'w.q8' of type Q8_0 has row length 30");
  }
  {
    GgufTestWriter w;
    w.add_tensor("w.huge", {1ll << 40, 1ll << 40}, 0, f32x4);
    expect_open_fails(w.bytes(), "huge.gguf", "tensor 'w.huge' has an absurd size");
  }
  {
    GgufTestWriter w;
    w.add_tensor("w.a", {4}, 0, f32x4);
    w.add_tensor("w.a", {4}, 0, f32x4);
    expect_open_fails(w.bytes(), "duptensor.gguf", "duplicate tensor 'w.a'");
  }
  {  // offset patched past the end of the file
    GgufTestWriter w;
    w.add_tensor("w.far", {4}, 0, f32x4);
    auto bytes = w.bytes();
    const uint64_t far = 1ull << 20;
    // The offset is the last field of the (only) tensor info.
    std::memcpy(bytes.data() + w.info_end() - 8, &far, 8);
    expect_open_fails(bytes, "far.gguf", "tensor 'w.far' data");
  }
  {  // offset not a multiple of the alignment
    GgufTestWriter w;
    w.add_tensor("w.mis", {4}, 0, f32x4);
    auto bytes = w.bytes();
    const uint64_t odd = 4;
    std::memcpy(bytes.data() + w.info_end() - 8, &odd, 8);
    expect_open_fails(bytes, "misaligned.gguf", "tensor 'w.mis' offset 4");
  }
}

// ---- the GGUF ModelSource on a tiny llama ----

struct TinyLlama {
  int64_t layers = 2, hidden = 32, ffn = 48, heads = 4, kv_heads = 2, head_dim = 8, vocab = 16;
};

// Rows of a [rows, cols] matrix in the order llama.cpp's converter writes Q/K: viewed as
// [n_head, 2, head_dim / 2, cols], axes 1 and 2 swapped.
std::vector<float> converter_permute(const std::vector<float>& hf, int64_t n_head, int64_t rows,
                                     int64_t cols) {
  const int64_t half = rows / n_head / 2;
  std::vector<float> out(hf.size());
  int64_t dst = 0;
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t p = 0; p < 2; ++p)
        for (int64_t c = 0; c < cols; ++c)
          out[static_cast<size_t>(dst++)] =
              hf[static_cast<size_t>(((h * 2 + p) * half + i) * cols + c)];
  return out;
}

// Hugging Face weights of the tiny model, keyed by HF name (row-major, HF layout).
std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> tiny_weights(
    const TinyLlama& m) {
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> w;
  uint32_t seed = 10;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    w[name] = {shape, random_floats(static_cast<size_t>(shape_numel(shape)), seed++)};
  };
  add("model.embed_tokens.weight", {m.vocab, m.hidden});
  for (int64_t l = 0; l < m.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {m.hidden});
    add(p + "self_attn.q_proj.weight", {m.heads * m.head_dim, m.hidden});
    add(p + "self_attn.k_proj.weight", {m.kv_heads * m.head_dim, m.hidden});
    add(p + "self_attn.v_proj.weight", {m.kv_heads * m.head_dim, m.hidden});
    add(p + "self_attn.o_proj.weight", {m.hidden, m.heads * m.head_dim});
    add(p + "post_attention_layernorm.weight", {m.hidden});
    add(p + "mlp.gate_proj.weight", {m.ffn, m.hidden});
    add(p + "mlp.up_proj.weight", {m.ffn, m.hidden});
    add(p + "mlp.down_proj.weight", {m.hidden, m.ffn});
  }
  add("model.norm.weight", {m.hidden});
  return w;
}

std::string gguf_name_of(const std::string& hf) {
  static const std::vector<std::pair<std::string, std::string>> kParts = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
  };
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  const std::string prefix = "model.layers.";
  const size_t dot = hf.find('.', prefix.size());
  const std::string layer = hf.substr(prefix.size(), dot - prefix.size());
  const std::string rest = hf.substr(dot + 1);
  for (const auto& [h, g] : kParts)
    if (rest == h) return "blk." + layer + "." + g;
  return "?";
}

// Writes the tiny model as llama.cpp's converter would (Q/K rows permuted unless qwen2).
// `tweak` may change a tensor's values or shape before it is written, or drop it (return false).
void write_tiny(const std::string& path, const TinyLlama& m, const std::string& arch,
                bool with_output,
                const std::function<bool(const std::string&, std::vector<int64_t>&,
                                         std::vector<float>&)>& tweak = nullptr) {
  GgufTestWriter w;
  w.add_string("general.architecture", arch);
  const std::string a = arch + ".";
  w.add_u32(a + "block_count", static_cast<uint32_t>(m.layers));
  w.add_u32(a + "context_length", 128);
  w.add_u32(a + "embedding_length", static_cast<uint32_t>(m.hidden));
  w.add_u32(a + "feed_forward_length", static_cast<uint32_t>(m.ffn));
  w.add_u32(a + "attention.head_count", static_cast<uint32_t>(m.heads));
  w.add_u32(a + "attention.head_count_kv", static_cast<uint32_t>(m.kv_heads));
  w.add_f32(a + "rope.freq_base", 100000.0f);
  w.add_f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_u32(a + "rope.dimension_count", static_cast<uint32_t>(m.head_dim));
  w.add_string("tokenizer.ggml.model", "llama");
  std::vector<std::string> tokens;
  for (int64_t i = 0; i < m.vocab; ++i) tokens.push_back("t" + std::to_string(i));
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);
  auto weights = tiny_weights(m);
  if (with_output) weights["lm_head.weight"] = {{m.vocab, m.hidden}, random_floats(512, 99)};
  for (auto& [name, sv] : weights) {
    auto shape = sv.first;
    auto values = sv.second;
    if (arch != "qwen2") {
      if (name.ends_with("q_proj.weight"))
        values = converter_permute(values, m.heads, shape[0], shape[1]);
      if (name.ends_with("k_proj.weight"))
        values = converter_permute(values, m.kv_heads, shape[0], shape[1]);
    }
    if (tweak && !tweak(name, shape, values)) continue;
    w.add_f32_tensor(gguf_name_of(name), {shape.rbegin(), shape.rend()}, values);
  }
  w.write(path);
}

TEST_F(GgufTest, ModelConfigFromLlamaKeys) {
  const TinyLlama m;
  const std::string path = file("tiny.gguf");
  write_tiny(path, m, "llama", false);
  auto src = io::open_gguf_model(path);
  const ModelConfig& c = src->config();
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.intermediate_size, 48);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 16);  // from the token list
  EXPECT_EQ(c.max_position_embeddings, 128);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_FLOAT_EQ(static_cast<float>(c.rms_norm_eps), 1e-5f);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_TRUE(src->has_tensor("model.layers.1.mlp.down_proj.weight"));
  EXPECT_FALSE(src->has_tensor("lm_head.weight"));
  EXPECT_FALSE(src->has_tensor("blk.0.attn_q.weight"));  // only Hugging Face names
  expect_bad_input(path, "not supported yet", [&] { src->tokenizer(); });

  const std::string untied = file("untied.gguf");
  write_tiny(untied, m, "llama", true);
  auto src2 = io::open_gguf_model(untied);
  EXPECT_FALSE(src2->config().tie_word_embeddings);
  const Tensor head = src2->load("lm_head.weight", {m.vocab, m.hidden});
  EXPECT_EQ(head.data()[511], random_floats(512, 99)[511]);
}

TEST_F(GgufTest, LoadUndoesTheConverterQkPermutation) {
  const TinyLlama m;
  const auto hf = tiny_weights(m);
  for (const std::string arch : {"llama", "qwen2"}) {
    SCOPED_TRACE(arch);
    const std::string path = file("perm_" + arch + ".gguf");
    write_tiny(path, m, arch, false);
    auto src = io::open_gguf_model(path);
    for (const auto& [name, sv] : hf) {
      SCOPED_TRACE(name);
      const Tensor t = src->load(name, sv.first);
      ASSERT_EQ(t.numel(), static_cast<int64_t>(sv.second.size()));
      EXPECT_TRUE(std::equal(sv.second.begin(), sv.second.end(), t.data()));
    }
  }
  // The permutation is not the identity, so the check above could fail.
  const auto& q = hf.at("model.layers.0.self_attn.q_proj.weight");
  EXPECT_NE(converter_permute(q.second, m.heads, q.first[0], q.first[1]), q.second);
}

TEST_F(GgufTest, LoadRejectsNanMissingAndWrongShape) {
  const TinyLlama m;
  const std::string path = file("nan.gguf");
  write_tiny(path, m, "llama", false,
             [](const std::string& name, std::vector<int64_t>&, std::vector<float>& v) {
               if (name == "model.layers.1.mlp.up_proj.weight")
                 v[37] = std::numeric_limits<float>::quiet_NaN();
               return name != "model.layers.0.mlp.gate_proj.weight";
             });
  auto src = io::open_gguf_model(path);
  expect_bad_input(path, "model.layers.1.mlp.up_proj.weight", [&] {
    src->load("model.layers.1.mlp.up_proj.weight", {m.ffn, m.hidden});
  });
  expect_bad_input(path, "model.layers.0.mlp.gate_proj.weight", [&] {
    src->load("model.layers.0.mlp.gate_proj.weight", {m.ffn, m.hidden});
  });
  expect_bad_input(path, "model.layers.0.mlp.up_proj.weight", [&] {
    src->load("model.layers.0.mlp.up_proj.weight", {m.hidden, m.ffn});
  });
  EXPECT_NO_THROW(src->load("model.layers.0.mlp.up_proj.weight", {m.ffn, m.hidden}));
}

// rope_freqs.weight as llama.cpp's converter computes it for llama3 rope scaling.
std::vector<float> converter_llama3_factors(double theta, int dim, double factor, double low,
                                            double high, double old_ctx) {
  std::vector<float> out;
  for (int k = 0; k < dim; k += 2) {
    const double freq = 1.0 / std::pow(theta, static_cast<double>(k) / dim);
    const double wavelen = 2 * std::numbers::pi / freq;
    if (wavelen < old_ctx / high) {
      out.push_back(1.0f);
    } else if (wavelen > old_ctx / low) {
      out.push_back(static_cast<float>(factor));
    } else {
      const double smooth = (old_ctx / wavelen - low) / (high - low);
      out.push_back(static_cast<float>(1 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

TEST_F(GgufTest, Llama3RopeScalingFromRopeFreqs) {
  auto write = [&](const std::string& name, const std::vector<float>& factors) {
    GgufTestWriter w;
    w.add_string("general.architecture", "llama");
    w.add_u32("llama.block_count", 1);
    w.add_u32("llama.embedding_length", 32);
    w.add_u32("llama.feed_forward_length", 48);
    w.add_u32("llama.attention.head_count", 4);
    w.add_u32("llama.vocab_size", 16);
    w.add_f32("llama.rope.freq_base", 500000.0f);
    w.add_f32_tensor("rope_freqs.weight", {4}, factors);
    w.write(file(name));
    return file(name);
  };
  // theta 5e5 and head_dim 8 put one frequency in each regime: kept, smoothed, scaled.
  const auto factors = converter_llama3_factors(500000.0, 8, 8.0, 1.0, 4.0, 8192.0);
  EXPECT_EQ(factors[0], 1.0f);
  EXPECT_GT(factors[2], 1.0f);
  EXPECT_LT(factors[2], 8.0f);
  EXPECT_EQ(factors[3], 8.0f);
  auto src = io::open_gguf_model(write("llama3.gguf", factors));
  const RopeScaling& s = src->config().rope_scaling;
  EXPECT_EQ(s.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(s.factor, 8.0);
  EXPECT_EQ(s.low_freq_factor, 1.0);
  EXPECT_EQ(s.high_freq_factor, 4.0);
  EXPECT_EQ(s.original_max_position_embeddings, 8192);

  const auto other = converter_llama3_factors(500000.0, 8, 8.0, 1.0, 2.0, 8192.0);
  const std::string path = write("other.gguf", other);
  expect_bad_input(path, "rope_freqs.weight", [&] { io::open_gguf_model(path); });
}

TEST_F(GgufTest, ModelRejectsMissingKeysAndUnknownArchitectures) {
  {
    GgufTestWriter w;
    w.add_string("general.architecture", "llama");
    w.add_u32("llama.block_count", 2);
    const std::string path = file("nokeys.gguf");
    w.write(path);
    expect_bad_input(path, "llama.embedding_length", [&] { io::open_gguf_model(path); });
  }
  {
    GgufTestWriter w;
    w.add_string("general.architecture", "gptneox");
    const std::string path = file("arch.gguf");
    w.write(path);
    expect_bad_input(path, "gptneox", [&] { io::open_gguf_model(path); });
  }
}

}  // namespace
}  // namespace skim
