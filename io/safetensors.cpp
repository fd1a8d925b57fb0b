#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "io/atomic_file.h"
#include "io/mapped_file.h"
#include "src/core/error.h"
#include "src/core/half.h"

namespace skim::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swaps");

namespace {

struct DtypeInfo {
  StDtype dtype;
  const char* name;
  size_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {StDtype::kBool, "BOOL", 1},      {StDtype::kU8, "U8", 1},          {StDtype::kI8, "I8", 1},
    {StDtype::kF8E5M2, "F8_E5M2", 1}, {StDtype::kF8E4M3, "F8_E4M3", 1}, {StDtype::kI16, "I16", 2},
    {StDtype::kU16, "U16", 2},        {StDtype::kF16, "F16", 2},        {StDtype::kBF16, "BF16", 2},
    {StDtype::kI32, "I32", 4},        {StDtype::kU32, "U32", 4},        {StDtype::kF32, "F32", 4},
    {StDtype::kF64, "F64", 8},        {StDtype::kI64, "I64", 8},        {StDtype::kU64, "U64", 8},
};

const DtypeInfo& dtype_info(StDtype dtype) {
  for (const DtypeInfo& d : kDtypes)
    if (d.dtype == dtype) return d;
  fail(ErrorKind::kInternal, "unknown safetensors dtype {}", static_cast<int>(dtype));
}

// numel * element size, or nullopt on overflow or a negative dimension.
std::optional<uint64_t> byte_size(const std::vector<int64_t>& shape, size_t elem) {
  unsigned __int128 n = elem;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    n *= static_cast<uint64_t>(d);
    if (n > static_cast<unsigned __int128>(UINT64_MAX)) return std::nullopt;
  }
  return static_cast<uint64_t>(n);
}

struct Entry {
  StDtype dtype;
  std::vector<int64_t> shape;
  size_t file = 0;     // index into Impl::files
  uint64_t begin = 0;  // absolute offset in the file
  uint64_t nbytes = 0;
};

}  // namespace

size_t st_dtype_size(StDtype dtype) {
  return dtype_info(dtype).size;
}
const char* st_dtype_name(StDtype dtype) {
  return dtype_info(dtype).name;
}

std::optional<StDtype> parse_st_dtype(std::string_view name) {
  for (const DtypeInfo& d : kDtypes)
    if (name == d.name) return d.dtype;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Reader

struct SafetensorsReader::Impl {
  std::string path;
  std::vector<std::unique_ptr<MappedFile>> files;
  std::map<std::string, Entry> tensors;
  std::map<std::string, std::string> metadata;

  // Parses and validates one .safetensors file; adds its tensors and metadata.
  void add_file(const std::string& file_path);
  const Entry& find(const std::string& name) const;
};

void SafetensorsReader::Impl::add_file(const std::string& file_path) {
  files.push_back(std::make_unique<MappedFile>(file_path));
  const MappedFile& f = *files.back();
  const size_t file_index = files.size() - 1;
  if (f.size() < 8)
    fail(ErrorKind::kBadInput, "{}: {} bytes is too short for a safetensors header", file_path,
         f.size());
  uint64_t header_len = 0;
  std::memcpy(&header_len, f.data(), 8);
  if (header_len > f.size() - 8)
    fail(ErrorKind::kBadInput,
         "{}: safetensors header length {} runs past the end of the file ({} bytes)", file_path,
         header_len, f.size());
  const char* hbegin = reinterpret_cast<const char*>(f.data() + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hbegin, hbegin + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kBadInput, "{}: safetensors header is not valid JSON: {}", file_path, e.what());
  }
  if (!header.is_object())
    fail(ErrorKind::kBadInput, "{}: safetensors header is not a JSON object", file_path);

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = f.size() - data_start;
  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object())
        fail(ErrorKind::kBadInput, "{}: __metadata__ is not a JSON object", file_path);
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail(ErrorKind::kBadInput, "{}: __metadata__ value of {} is not a string", file_path,
               m.key());
        metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object())
      fail(ErrorKind::kBadInput, "{}: tensor {}: header entry is not a JSON object", file_path,
           name);
    const auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string())
      fail(ErrorKind::kBadInput, "{}: tensor {}: missing or non-string dtype", file_path, name);
    const std::optional<StDtype> dtype = parse_st_dtype(dt->get<std::string>());
    if (!dtype)
      fail(ErrorKind::kBadInput, "{}: tensor {}: unknown dtype {}", file_path, name,
           dt->get<std::string>());
    const auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array())
      fail(ErrorKind::kBadInput, "{}: tensor {}: missing or non-array shape", file_path, name);
    std::vector<int64_t> shape;
    for (const nlohmann::json& d : *sh) {
      if (!d.is_number_unsigned())
        fail(ErrorKind::kBadInput, "{}: tensor {}: shape {} is not a list of non-negative integers",
             file_path, name, sh->dump());
      shape.push_back(d.get<int64_t>());
    }
    const auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail(ErrorKind::kBadInput,
           "{}: tensor {}: data_offsets is not a pair of non-negative integers", file_path, name);
    const uint64_t begin = (*off)[0].get<uint64_t>();
    const uint64_t end = (*off)[1].get<uint64_t>();
    if (begin > end || end > data_size)
      fail(ErrorKind::kBadInput,
           "{}: tensor {}: data_offsets [{}, {}] out of range of the {}-byte data section",
           file_path, name, begin, end, data_size);
    const std::optional<uint64_t> expected = byte_size(shape, st_dtype_size(*dtype));
    if (!expected || *expected != end - begin)
      fail(ErrorKind::kBadInput,
           "{}: tensor {}: data_offsets [{}, {}] hold {} bytes but {} {} needs {}", file_path, name,
           begin, end, end - begin, st_dtype_name(*dtype), shape_string(shape),
           expected ? fmt::format("{}", *expected) : std::string("an overflowing size"));
    if (tensors.count(name) != 0)
      fail(ErrorKind::kBadInput, "{}: tensor {} also appears in {}", file_path, name,
           files[tensors.at(name).file]->path());
    auto [pos, inserted] = tensors.emplace(
        name, Entry{*dtype, std::move(shape), file_index, data_start + begin, end - begin});
    (void)inserted;
    ranges.push_back({begin, end, &pos->first});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < ranges.size(); ++i) {
    // Empty tensors occupy no bytes and cannot overlap anything.
    if (ranges[i].begin == ranges[i].end || ranges[i - 1].begin == ranges[i - 1].end) continue;
    if (ranges[i].begin < ranges[i - 1].end)
      fail(ErrorKind::kBadInput, "{}: tensors {} and {} overlap (bytes [{}, {}) and [{}, {}))",
           file_path, *ranges[i - 1].name, *ranges[i].name, ranges[i - 1].begin, ranges[i - 1].end,
           ranges[i].begin, ranges[i].end);
  }
}

const Entry& SafetensorsReader::Impl::find(const std::string& name) const {
  const auto it = tensors.find(name);
  if (it == tensors.end()) fail(ErrorKind::kBadInput, "{}: no tensor {}", path, name);
  return it->second;
}

SafetensorsReader::SafetensorsReader() : impl_(std::make_unique<Impl>()) {}
SafetensorsReader::~SafetensorsReader() = default;

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::unique_ptr<SafetensorsReader> SafetensorsReader::open(const std::string& path) {
  std::unique_ptr<SafetensorsReader> r(new SafetensorsReader());
  Impl& impl = *r->impl_;
  impl.path = path;
  if (!ends_with(path, ".json")) {
    impl.add_file(path);
    return r;
  }
  // A sharded set: {"metadata": {...}, "weight_map": {tensor: shard file}}.
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kBadInput, "{}: not valid JSON: {}", path, e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail(ErrorKind::kBadInput, "{}: missing weight_map object", path);
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  std::map<std::string, std::string> weight_map;  // tensor -> shard path
  std::vector<std::string> shards;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string())
      fail(ErrorKind::kBadInput, "{}: weight_map entry of {} is not a string", path, name);
    const std::string shard_path = (folder / shard.get<std::string>()).string();
    weight_map[name] = shard_path;
    if (std::find(shards.begin(), shards.end(), shard_path) == shards.end()) {
      if (!std::filesystem::is_regular_file(shard_path))
        fail(ErrorKind::kBadInput, "{}: shard {} (holding {}) is missing", path, shard_path, name);
      shards.push_back(shard_path);
    }
  }
  for (const std::string& shard : shards) impl.add_file(shard);
  for (const auto& [name, shard] : weight_map) {
    const auto it = impl.tensors.find(name);
    if (it == impl.tensors.end() || impl.files[it->second.file]->path() != shard)
      fail(ErrorKind::kBadInput, "{}: weight_map puts tensor {} in {} but that shard lacks it",
           path, name, shard);
  }
  return r;
}

const std::string& SafetensorsReader::path() const {
  return impl_->path;
}

bool SafetensorsReader::has(const std::string& name) const {
  return impl_->tensors.count(name) != 0;
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> out;
  out.reserve(impl_->tensors.size());
  for (const auto& [name, e] : impl_->tensors) out.push_back(name);
  return out;
}

StTensorView SafetensorsReader::raw(const std::string& name) const {
  const Entry& e = impl_->find(name);
  const MappedFile& f = *impl_->files[e.file];
  return {e.dtype, e.shape, f.bytes(e.begin, e.nbytes, name), f.path()};
}

Tensor SafetensorsReader::load_f32(const std::string& name) const {
  const StTensorView v = raw(name);
  const size_t n = static_cast<size_t>(shape_numel(v.shape));
  std::vector<float> out(n);
  const uint8_t* p = v.bytes.data();
  // memcpy per element: the data of a file from another writer need not be aligned.
  switch (v.dtype) {
    case StDtype::kF32:
      std::memcpy(out.data(), p, n * 4);
      break;
    case StDtype::kF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = half_to_float(h);
      }
      break;
    case StDtype::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, p + 2 * i, 2);
        out[i] = bf16_to_float(b);
      }
      break;
    case StDtype::kF64:
      for (size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      break;
    default:
      fail(ErrorKind::kBadInput, "{}: tensor {} has dtype {}, not a floating-point type", v.file,
           name, st_dtype_name(v.dtype));
  }
  return Tensor(v.shape, std::move(out));
}

const std::map<std::string, std::string>& SafetensorsReader::metadata() const {
  return impl_->metadata;
}

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

struct PendingTensor {
  std::string name;
  StDtype dtype;
  std::vector<int64_t> shape;
  Tensor values;               // float tensors, converted while writing
  std::vector<uint8_t> bytes;  // raw tensors
  bool is_raw = false;
  uint64_t nbytes = 0;
};

}  // namespace

struct SafetensorsWriter::Impl {
  std::vector<PendingTensor> tensors;
  std::map<std::string, std::string> metadata;
  void check_new_name(const std::string& name) const {
    if (name == "__metadata__")
      fail(ErrorKind::kInternal, "safetensors: __metadata__ is not a tensor name");
    for (const PendingTensor& t : tensors)
      if (t.name == name) fail(ErrorKind::kInternal, "safetensors: tensor {} added twice", name);
  }
};

SafetensorsWriter::SafetensorsWriter() : impl_(std::make_unique<Impl>()) {}
SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::add(const std::string& name, Tensor tensor, StDtype stored_as) {
  if (stored_as != StDtype::kF32 && stored_as != StDtype::kF16 && stored_as != StDtype::kBF16)
    fail(ErrorKind::kInternal, "safetensors: tensor {} cannot be stored as {}", name,
         st_dtype_name(stored_as));
  impl_->check_new_name(name);
  PendingTensor t;
  t.name = name;
  t.dtype = stored_as;
  t.shape = tensor.shape();
  t.nbytes = static_cast<uint64_t>(tensor.numel()) * st_dtype_size(stored_as);
  t.values = std::move(tensor);
  impl_->tensors.push_back(std::move(t));
}

void SafetensorsWriter::add_raw(const std::string& name, StDtype dtype, std::vector<int64_t> shape,
                                std::span<const uint8_t> bytes) {
  impl_->check_new_name(name);
  const std::optional<uint64_t> expected = byte_size(shape, st_dtype_size(dtype));
  if (!expected || *expected != bytes.size())
    fail(ErrorKind::kInternal, "safetensors: tensor {} {} {} given {} bytes", name,
         st_dtype_name(dtype), shape_string(shape), bytes.size());
  PendingTensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes.assign(bytes.begin(), bytes.end());
  t.is_raw = true;
  t.nbytes = bytes.size();
  impl_->tensors.push_back(std::move(t));
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  impl_->metadata[key] = value;
}

void SafetensorsWriter::write(const std::string& path) const {
  // The reference order: larger dtypes first (so every tensor stays aligned to its element size
  // given an 8-byte aligned data section), then by name.
  std::vector<const PendingTensor*> order;
  for (const PendingTensor& t : impl_->tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const PendingTensor* a, const PendingTensor* b) {
    if (a->dtype != b->dtype) return static_cast<int>(a->dtype) > static_cast<int>(b->dtype);
    return a->name < b->name;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!impl_->metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : impl_->metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const PendingTensor* t : order) {
    header[t->name] = {{"dtype", st_dtype_name(t->dtype)},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + t->nbytes}}};
    offset += t->nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kInternal, "{}: cannot encode the safetensors header: {}", path, e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  AtomicFile out(path);
  const uint64_t len = text.size();
  out.write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&len), 8));
  out.write(text);
  constexpr size_t kChunk = 1 << 20;  // elements converted per write
  std::vector<uint16_t> buf;
  for (const PendingTensor* t : order) {
    if (t->is_raw) {
      out.write(t->bytes);
      continue;
    }
    const std::span<const float> v = t->values.values();
    if (t->dtype == StDtype::kF32) {
      out.write(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size_bytes()));
      continue;
    }
    for (size_t start = 0; start < v.size(); start += kChunk) {
      const size_t n = std::min(kChunk, v.size() - start);
      buf.resize(n);
      for (size_t i = 0; i < n; ++i)
        buf[i] =
            t->dtype == StDtype::kF16 ? float_to_half(v[start + i]) : float_to_bf16(v[start + i]);
      out.write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()), n * 2));
    }
  }
  out.commit();
}

}  // namespace skim::io
