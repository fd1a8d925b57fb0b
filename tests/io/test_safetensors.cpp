// safetensors reader/writer: round trips, the on-disk layout checked by an independent parse of
// the header, sharded sets, and every corrupt-file case.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "src/core/error.h"

namespace skim::io {
namespace {

namespace fs = std::filesystem;

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "skim_st_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
  fs::path dir_;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file from a header text and a data section, built by hand.
std::string make_file(const std::string& header, const std::string& data, uint64_t len = 0) {
  if (len == 0) len = header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &len, 8);
  return out + header + data;
}

// The header of a file, parsed independently of the reader.
struct ParsedFile {
  uint64_t header_len;
  nlohmann::json header;
  std::string data;
};
ParsedFile parse(const std::string& bytes) {
  ParsedFile p;
  std::memcpy(&p.header_len, bytes.data(), 8);
  p.header = nlohmann::json::parse(bytes.substr(8, p.header_len));
  p.data = bytes.substr(8 + p.header_len);
  return p;
}

template <typename F>
Error catch_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a skim::Error";
  return Error(ErrorKind::kInternal, "");
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// The reader must reject the file with kBadInput and name the file (and the tensor if given).
void expect_bad_file(const std::string& path, const std::string& tensor = "",
                     const std::string& also = "") {
  const Error e = catch_error([&] { SafetensorsReader::open(path); });
  EXPECT_EQ(e.kind(), ErrorKind::kBadInput) << e.what();
  EXPECT_TRUE(contains(e.what(), path)) << e.what();
  if (!tensor.empty()) {
    EXPECT_TRUE(contains(e.what(), tensor)) << e.what();
  }
  if (!also.empty()) {
    EXPECT_TRUE(contains(e.what(), also)) << e.what();
  }
}

TEST_F(Safetensors, F32RoundTripAndLayout) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  std::vector<float> a(6 * 5), b(7);
  for (float& v : a) v = dist(rng);
  for (float& v : b) v = dist(rng);
  SafetensorsWriter w;
  w.add("b.weight", Tensor({7}, b));
  w.add("a.weight", Tensor({6, 5}, a));
  w.write(file("m.safetensors"));

  // Independent parse: 8-byte LE length, header padded to a multiple of 8 with spaces, tensors
  // sorted by name within a dtype, offsets contiguous from 0, data little-endian fp32.
  const std::string bytes = read_all(file("m.safetensors"));
  const ParsedFile p = parse(bytes);
  EXPECT_EQ(p.header_len % 8, 0u);
  const std::string header_text = bytes.substr(8, p.header_len);
  EXPECT_EQ(header_text.find_last_not_of(' ') + 1, p.header.dump().size());
  EXPECT_EQ(p.header["a.weight"]["dtype"], "F32");
  EXPECT_EQ(p.header["a.weight"]["shape"], nlohmann::json({6, 5}));
  EXPECT_EQ(p.header["a.weight"]["data_offsets"], nlohmann::json({0, 120}));
  EXPECT_EQ(p.header["b.weight"]["data_offsets"], nlohmann::json({120, 148}));
  EXPECT_FALSE(p.header.contains("__metadata__"));
  ASSERT_EQ(p.data.size(), 148u);
  EXPECT_EQ(std::memcmp(p.data.data(), a.data(), 120), 0);
  EXPECT_EQ(std::memcmp(p.data.data() + 120, b.data(), 28), 0);

  const auto r = SafetensorsReader::open(file("m.safetensors"));
  EXPECT_EQ(r->names(), (std::vector<std::string>{"a.weight", "b.weight"}));
  const Tensor ta = r->load_f32("a.weight");
  EXPECT_EQ(ta.shape(), (std::vector<int64_t>{6, 5}));
  EXPECT_EQ(std::vector<float>(ta.values().begin(), ta.values().end()), a);
  EXPECT_EQ(r->load_f32("b.weight").values()[6], b[6]);
  EXPECT_TRUE(r->metadata().empty());
  EXPECT_EQ(listing(), (std::vector<std::string>{"m.safetensors"}));  // no temporary left
}

// Values exactly representable in both half formats, with their bit patterns written down from
// the IEEE / bfloat16 definitions (not computed by the code under test).
const std::vector<float> kValues = {1.0f, -2.0f, 0.5f, 0.0f, -0.0f, 3.140625f, 96.0f};
const std::vector<uint16_t> kHalfBits = {0x3C00, 0xC000, 0x3800, 0x0000, 0x8000, 0x4248, 0x5600};
const std::vector<uint16_t> kBf16Bits = {0x3F80, 0xC000, 0x3F00, 0x0000, 0x8000, 0x4049, 0x42C0};

TEST_F(Safetensors, F16AndBf16RoundTripWithKnownBits) {
  SafetensorsWriter w;
  w.add("h", Tensor({7}, kValues), StDtype::kF16);
  w.add("b", Tensor({7}, kValues), StDtype::kBF16);
  // Extremes of half: largest finite and smallest subnormal.
  w.add("h_ext", Tensor({2}, {65504.0f, 5.9604644775390625e-8f}), StDtype::kF16);
  w.write(file("h.safetensors"));

  const ParsedFile p = parse(read_all(file("h.safetensors")));
  EXPECT_EQ(p.header["h"]["dtype"], "F16");
  EXPECT_EQ(p.header["b"]["dtype"], "BF16");
  const auto r = SafetensorsReader::open(file("h.safetensors"));
  for (const auto& [name, bits] : {std::pair{"h", kHalfBits}, std::pair{"b", kBf16Bits}}) {
    const StTensorView v = r->raw(name);
    ASSERT_EQ(v.bytes.size(), 14u);
    std::vector<uint16_t> got(7);
    std::memcpy(got.data(), v.bytes.data(), 14);
    EXPECT_EQ(got, bits) << name;
    const Tensor t = r->load_f32(name);
    for (size_t i = 0; i < kValues.size(); ++i) {
      EXPECT_EQ(t.values()[i], kValues[i]) << name << " " << i;
      EXPECT_EQ(std::signbit(t.values()[i]), std::signbit(kValues[i])) << name << " " << i;
    }
  }
  std::vector<uint16_t> ext(2);
  std::memcpy(ext.data(), r->raw("h_ext").bytes.data(), 4);
  EXPECT_EQ(ext, (std::vector<uint16_t>{0x7BFF, 0x0001}));
  EXPECT_EQ(r->load_f32("h_ext").values()[1], 5.9604644775390625e-8f);
}

TEST_F(Safetensors, RawIntegerTensorsAreAlignedAndExact) {
  const std::vector<uint8_t> u8 = {0, 1, 2, 255, 128};
  const std::vector<int32_t> i32 = {-1, 2147483647, -2147483647 - 1, 42};
  const std::vector<int64_t> i64 = {-5, int64_t{1} << 40};
  const std::vector<uint16_t> u16 = {65535, 0, 7};
  const std::vector<int16_t> i16 = {-32768, 32767};
  SafetensorsWriter w;
  w.add_typed<uint8_t>("codes", StDtype::kU8, {5}, u8);
  w.add_typed<int32_t>("idx", StDtype::kI32, {2, 2}, i32);
  w.add_typed<int64_t>("big", StDtype::kI64, {2}, i64);
  w.add_typed<uint16_t>("u16", StDtype::kU16, {3}, u16);
  w.add_typed<int16_t>("i16", StDtype::kI16, {1, 2}, i16);
  w.add_typed<uint8_t>("empty", StDtype::kU8, {0, 4}, std::span<const uint8_t>());
  w.write(file("raw.safetensors"));

  // Larger dtypes first, so each tensor starts at a multiple of its element size.
  const ParsedFile p = parse(read_all(file("raw.safetensors")));
  EXPECT_EQ((8 + p.header_len) % 8, 0u);
  EXPECT_EQ(p.header["big"]["data_offsets"], nlohmann::json({0, 16}));
  EXPECT_EQ(p.header["idx"]["data_offsets"], nlohmann::json({16, 32}));
  EXPECT_EQ(p.header["u16"]["data_offsets"], nlohmann::json({32, 38}));
  EXPECT_EQ(p.header["i16"]["data_offsets"], nlohmann::json({38, 42}));
  EXPECT_EQ(p.header["codes"]["data_offsets"], nlohmann::json({42, 47}));
  EXPECT_EQ(p.header["empty"]["shape"], nlohmann::json({0, 4}));

  const auto r = SafetensorsReader::open(file("raw.safetensors"));
  const auto check = [&](const std::string& name, StDtype dtype, std::vector<int64_t> shape,
                         const void* values, size_t nbytes) {
    const StTensorView v = r->raw(name);
    EXPECT_EQ(v.dtype, dtype) << name;
    EXPECT_EQ(v.shape, shape) << name;
    ASSERT_EQ(v.bytes.size(), nbytes) << name;
    if (nbytes > 0) {
      EXPECT_EQ(std::memcmp(v.bytes.data(), values, nbytes), 0) << name;
    }
  };
  check("codes", StDtype::kU8, {5}, u8.data(), 5);
  check("idx", StDtype::kI32, {2, 2}, i32.data(), 16);
  check("big", StDtype::kI64, {2}, i64.data(), 16);
  check("u16", StDtype::kU16, {3}, u16.data(), 6);
  check("i16", StDtype::kI16, {1, 2}, i16.data(), 4);
  check("empty", StDtype::kU8, {0, 4}, nullptr, 0);

  const Error e = catch_error([&] { r->load_f32("idx"); });
  EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  EXPECT_TRUE(contains(e.what(), "idx") && contains(e.what(), "I32")) << e.what();
  const Error missing = catch_error([&] { r->raw("nope"); });
  EXPECT_EQ(missing.kind(), ErrorKind::kBadInput);
  EXPECT_TRUE(contains(missing.what(), "nope")) << missing.what();
}

TEST_F(Safetensors, MetadataRoundTrip) {
  SafetensorsWriter w;
  w.set_metadata("format", "skim-packed");
  w.set_metadata("bits", "3.5");
  w.add("x", Tensor({1}, {2.0f}));
  w.write(file("meta.safetensors"));
  const ParsedFile p = parse(read_all(file("meta.safetensors")));
  EXPECT_EQ(p.header["__metadata__"], nlohmann::json({{"format", "skim-packed"}, {"bits", "3.5"}}));
  const auto r = SafetensorsReader::open(file("meta.safetensors"));
  EXPECT_EQ(r->metadata().at("format"), "skim-packed");
  EXPECT_EQ(r->metadata().at("bits"), "3.5");
  EXPECT_FALSE(r->has("__metadata__"));
}

TEST_F(Safetensors, ShardedSetThroughIndex) {
  SafetensorsWriter s1, s2;
  s1.add("model.embed_tokens.weight", Tensor({2, 2}, {1, 2, 3, 4}));
  s1.set_metadata("format", "pt");
  s2.add("model.norm.weight", Tensor({2}, {0.5f, 0.25f}), StDtype::kBF16);
  s2.add("lm_head.weight", Tensor({2, 2}, {5, 6, 7, 8}), StDtype::kF16);
  s1.write(file("model-00001-of-00002.safetensors"));
  s2.write(file("model-00002-of-00002.safetensors"));
  const nlohmann::json index = {{"metadata", {{"total_size", 28}}},
                                {"weight_map",
                                 {{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
                                  {"model.norm.weight", "model-00002-of-00002.safetensors"},
                                  {"lm_head.weight", "model-00002-of-00002.safetensors"}}}};
  write_all(file("model.safetensors.index.json"), index.dump());

  const auto r = SafetensorsReader::open(file("model.safetensors.index.json"));
  EXPECT_EQ(r->names().size(), 3u);
  EXPECT_EQ(r->load_f32("model.embed_tokens.weight").values()[3], 4.0f);
  EXPECT_EQ(r->load_f32("model.norm.weight").values()[1], 0.25f);
  EXPECT_EQ(r->load_f32("lm_head.weight").values()[2], 7.0f);
  EXPECT_EQ(r->raw("lm_head.weight").file, file("model-00002-of-00002.safetensors"));
  EXPECT_EQ(r->metadata().at("format"), "pt");

  // The index points a tensor at the wrong shard.
  nlohmann::json wrong = index;
  wrong["weight_map"]["lm_head.weight"] = "model-00001-of-00002.safetensors";
  write_all(file("wrong.index.json"), wrong.dump());
  expect_bad_file(file("wrong.index.json"), "lm_head.weight");

  // A shard named by the index is missing.
  nlohmann::json gone = index;
  gone["weight_map"]["model.norm.weight"] = "model-00003-of-00002.safetensors";
  write_all(file("gone.index.json"), gone.dump());
  expect_bad_file(file("gone.index.json"), "model-00003-of-00002.safetensors");

  write_all(file("broken.index.json"), "{\"weight_map\": {");
  expect_bad_file(file("broken.index.json"));
  write_all(file("nomap.index.json"), "{\"metadata\": {}}");
  expect_bad_file(file("nomap.index.json"), "", "weight_map");
}

TEST_F(Safetensors, CorruptFilesAreRejected) {
  const std::string data(16, '\0');
  const auto bad = [&](const std::string& name, const std::string& bytes,
                       const std::string& tensor = "", const std::string& also = "") {
    write_all(file(name), bytes);
    SCOPED_TRACE(name);
    expect_bad_file(file(name), tensor, also);
  };
  // A valid file first, so the cases below differ from it in one thing each.
  write_all(file("ok.safetensors"),
            make_file(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", data));
  EXPECT_NO_THROW(SafetensorsReader::open(file("ok.safetensors")));

  bad("short.safetensors", std::string(5, '\0'));
  bad("len_past_eof.safetensors",
      make_file(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", data, 1 << 20), "",
      "header length");
  bad("not_json.safetensors", make_file(R"({"t":{"dtype":"F32",)", data), "", "JSON");
  bad("not_object.safetensors", make_file(R"([1,2,3])", data));
  bad("out_of_range.safetensors",
      make_file(R"({"t":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]}})", data), "t",
      "out of range");
  bad("reversed.safetensors",
      make_file(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", data), "t");
  bad("size_mismatch.safetensors",
      make_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data), "t", "12");
  bad("dtype_mismatch.safetensors",
      make_file(R"({"t":{"dtype":"F16","shape":[2,2],"data_offsets":[0,16]}})", data), "t");
  bad("overlap.safetensors",
      make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                data),
      "b", "overlap");
  bad("unknown_dtype.safetensors",
      make_file(R"({"t":{"dtype":"Q4","shape":[2,2],"data_offsets":[0,16]}})", data), "t", "Q4");
  bad("negative_shape.safetensors",
      make_file(R"({"t":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", data), "t");
  bad("no_offsets.safetensors", make_file(R"({"t":{"dtype":"F32","shape":[4]}})", data), "t",
      "data_offsets");
  bad("overflow.safetensors",
      make_file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})",
                data),
      "t");
  bad("bad_metadata.safetensors",
      make_file(R"({"__metadata__":{"k":1},"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                data),
      "", "__metadata__");

  const Error e = catch_error([&] { SafetensorsReader::open(file("absent.safetensors")); });
  EXPECT_EQ(e.kind(), ErrorKind::kIo);
  EXPECT_TRUE(contains(e.what(), "absent.safetensors")) << e.what();
}

TEST_F(Safetensors, WriterIsAtomic) {
  // A folder that does not exist: the write fails and nothing appears.
  SafetensorsWriter w;
  w.add("x", Tensor({2}, {1, 2}));
  const std::string nowhere = file("missing_folder/out.safetensors");
  const Error e = catch_error([&] { w.write(nowhere); });
  EXPECT_EQ(e.kind(), ErrorKind::kIo);
  EXPECT_TRUE(contains(e.what(), nowhere)) << e.what();
  EXPECT_FALSE(fs::exists(nowhere));

  // A read-only folder (only meaningful when not running as root, which bypasses permissions).
  if (::geteuid() != 0) {
    fs::create_directory(dir_ / "ro");
    fs::permissions(dir_ / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_THROW(w.write(file("ro/out.safetensors")), Error);
    EXPECT_FALSE(fs::exists(file("ro/out.safetensors")));
    EXPECT_TRUE(fs::is_empty(dir_ / "ro"));
    fs::permissions(dir_ / "ro", fs::perms::owner_all);
  }

  // Overwriting replaces the whole file; success leaves no temporary behind.
  w.write(file("out.safetensors"));
  SafetensorsWriter w2;
  w2.add("y", Tensor({3}, {4, 5, 6}), StDtype::kBF16);
  w2.write(file("out.safetensors"));
  const auto r = SafetensorsReader::open(file("out.safetensors"));
  EXPECT_FALSE(r->has("x"));
  EXPECT_EQ(r->load_f32("y").values()[2], 6.0f);
  EXPECT_EQ(listing(), (std::vector<std::string>{"out.safetensors"}));
}

TEST_F(Safetensors, AtomicFileAbandonedWriteLeavesOldContent) {
  write_all(file("cfg.json"), "old");
  {
    AtomicFile f(file("cfg.json"));
    f.write(std::string_view("new but never committed"));
    EXPECT_TRUE(fs::exists(f.temp_path()));
    EXPECT_EQ(fs::path(f.temp_path()).parent_path(), dir_);
    // Leaving the scope without commit() stands in for an error thrown mid-write.
  }
  EXPECT_EQ(read_all(file("cfg.json")), "old");
  EXPECT_EQ(listing(), (std::vector<std::string>{"cfg.json"}));

  write_file_atomic(file("cfg.json"), "new");
  EXPECT_EQ(read_all(file("cfg.json")), "new");
  EXPECT_EQ(listing(), (std::vector<std::string>{"cfg.json"}));
}

TEST_F(Safetensors, WriterRejectsMisuse) {
  SafetensorsWriter w;
  w.add("x", Tensor({1}, {1}));
  EXPECT_THROW(w.add("x", Tensor({1}, {1})), Error);
  EXPECT_THROW(w.add("__metadata__", Tensor({1}, {1})), Error);
  EXPECT_THROW(w.add("y", Tensor({1}, {1}), StDtype::kI32), Error);
  const std::vector<uint8_t> three(3);
  EXPECT_THROW(w.add_typed<uint8_t>("z", StDtype::kU16, {2}, three), Error);
}

}  // namespace
}  // namespace skim::io
