#include "io/gguf.h"

#include <bit>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "io/gguf_dequant.h"
#include "src/core/error.h"

namespace skim::io {
namespace {

constexpr uint32_t kMagic = 0x46554747u;  // "GGUF" read as a little-endian uint32
constexpr uint32_t kDefaultAlignment = 32;
constexpr int kMaxDims = 4;        // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;  // nesting this deep is corruption, not metadata
constexpr uint64_t kMaxElements = uint64_t{1} << 56;  // keeps byte counts far from overflow
constexpr uint64_t kMinKvBytes = 13;                  // key length, value type, one byte of value
constexpr uint64_t kMinTensorBytes = 24;              // name length, n_dims, type, offset

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes little-endian");

bool is_unsigned(GgufValueType t) {
  return t == GgufValueType::kUint8 || t == GgufValueType::kUint16 || t == GgufValueType::kUint32 ||
         t == GgufValueType::kUint64;
}
bool is_signed(GgufValueType t) {
  return t == GgufValueType::kInt8 || t == GgufValueType::kInt16 || t == GgufValueType::kInt32 ||
         t == GgufValueType::kInt64;
}

// Smallest encoded size of one value of the type (strings and arrays carry a 64-bit length);
// 0 for an unknown type.
uint64_t min_value_bytes(uint32_t raw) {
  switch (static_cast<GgufValueType>(raw)) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
    case GgufValueType::kString:
      return 8;
    case GgufValueType::kArray:
      return 12;
  }
  return 0;
}

// Sequential little-endian reads from the mapped file; every read is bounds-checked and names
// what it was reading when the file ends early.
class Cursor {
 public:
  explicit Cursor(const MappedFile& file) : file_(file) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return file_.size() - pos_; }

  template <typename T>
  T read(const std::string& what) {
    T v;
    std::memcpy(&v, file_.bytes(pos_, sizeof(T), what).data(), sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const std::string& what) {
    const uint64_t n = read<uint64_t>(what + " length");
    const auto b = file_.bytes(pos_, n, what);  // rejects lengths past the end before allocating
    pos_ += n;
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }

 private:
  const MappedFile& file_;
  uint64_t pos_ = 0;
};

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
      return "uint8";
    case GgufValueType::kInt8:
      return "int8";
    case GgufValueType::kUint16:
      return "uint16";
    case GgufValueType::kInt16:
      return "int16";
    case GgufValueType::kUint32:
      return "uint32";
    case GgufValueType::kInt32:
      return "int32";
    case GgufValueType::kFloat32:
      return "float32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "string";
    case GgufValueType::kArray:
      return "array";
    case GgufValueType::kUint64:
      return "uint64";
    case GgufValueType::kInt64:
      return "int64";
    case GgufValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

std::vector<int64_t> GgufTensorInfo::shape() const {
  return {ne.rbegin(), ne.rend()};
}

struct GgufFile::Impl {
  explicit Impl(const std::string& path) : file(path) {}

  MappedFile file;
  uint32_t version = 0;
  uint32_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;
  std::vector<std::string> key_order;
  std::unordered_map<std::string, GgufValue> kv;
  std::vector<GgufTensorInfo> tensors;
  std::unordered_map<std::string, size_t> tensor_index;

  const std::string& path() const { return file.path(); }

  [[noreturn]] void bad(const std::string& what) const {
    fail(ErrorKind::kBadInput, "{}: {}", path(), what);
  }

  GgufValue read_value(Cursor& c, uint32_t raw_type, const std::string& key, int depth) {
    if (min_value_bytes(raw_type) == 0)
      bad(fmt::format("key '{}' has unknown value type {}", key, raw_type));
    GgufValue v;
    v.type = static_cast<GgufValueType>(raw_type);
    const std::string what = fmt::format("value of key '{}'", key);
    switch (v.type) {
      case GgufValueType::kUint8:
        v.u = c.read<uint8_t>(what);
        break;
      case GgufValueType::kUint16:
        v.u = c.read<uint16_t>(what);
        break;
      case GgufValueType::kUint32:
        v.u = c.read<uint32_t>(what);
        break;
      case GgufValueType::kUint64:
        v.u = c.read<uint64_t>(what);
        break;
      case GgufValueType::kInt8:
        v.i = c.read<int8_t>(what);
        break;
      case GgufValueType::kInt16:
        v.i = c.read<int16_t>(what);
        break;
      case GgufValueType::kInt32:
        v.i = c.read<int32_t>(what);
        break;
      case GgufValueType::kInt64:
        v.i = c.read<int64_t>(what);
        break;
      case GgufValueType::kFloat32:
        v.f = c.read<float>(what);
        break;
      case GgufValueType::kFloat64:
        v.f = c.read<double>(what);
        break;
      case GgufValueType::kBool: {
        const uint8_t b = c.read<uint8_t>(what);
        if (b > 1) bad(fmt::format("key '{}' has bool value {}", key, b));
        v.b = b != 0;
        break;
      }
      case GgufValueType::kString:
        v.s = c.read_string(what);
        break;
      case GgufValueType::kArray: {
        if (depth >= kMaxArrayDepth)
          bad(fmt::format("key '{}' nests arrays deeper than {}", key, kMaxArrayDepth));
        const uint32_t elem = c.read<uint32_t>(what + " array type");
        const uint64_t n = c.read<uint64_t>(what + " array length");
        const uint64_t min_bytes = min_value_bytes(elem);
        if (min_bytes == 0)
          bad(fmt::format("key '{}' is an array of unknown value type {}", key, elem));
        if (n > c.remaining() / min_bytes)
          bad(fmt::format("key '{}' claims {} array elements but only {} bytes remain", key, n,
                          c.remaining()));
        v.array_type = static_cast<GgufValueType>(elem);
        v.array.reserve(n);
        for (uint64_t k = 0; k < n; ++k) v.array.push_back(read_value(c, elem, key, depth + 1));
        break;
      }
    }
    return v;
  }

  void parse() {
    Cursor c(file);
    const uint32_t magic = c.read<uint32_t>("magic");
    if (magic != kMagic) bad(fmt::format("not a GGUF file (magic 0x{:08x})", magic));
    version = c.read<uint32_t>("version");
    if (version == 0x02000000u || version == 0x03000000u) bad("big-endian GGUF is not supported");
    if (version != 2 && version != 3)
      bad(fmt::format("unsupported GGUF version {} (supported: 2, 3)", version));
    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read<uint64_t>("key-value count");
    if (n_kv > c.remaining() / kMinKvBytes)
      bad(fmt::format("claims {} key-values but only {} bytes remain", n_kv, c.remaining()));

    for (uint64_t k = 0; k < n_kv; ++k) {
      std::string key = c.read_string(fmt::format("key {}", k));
      const uint32_t type = c.read<uint32_t>(fmt::format("type of key '{}'", key));
      GgufValue v = read_value(c, type, key, 0);
      if (!kv.emplace(key, std::move(v)).second) bad(fmt::format("duplicate key '{}'", key));
      key_order.push_back(std::move(key));
    }

    if (auto it = kv.find("general.alignment"); it != kv.end()) {
      const GgufValue& a = it->second;
      if (a.type != GgufValueType::kUint32 || a.u == 0 || !std::has_single_bit(a.u))
        bad("general.alignment must be a uint32 power of two");
      alignment = static_cast<uint32_t>(a.u);
    }

    if (n_tensors > c.remaining() / kMinTensorBytes)
      bad(fmt::format("claims {} tensors but only {} bytes remain", n_tensors, c.remaining()));
    tensors.reserve(n_tensors);
    for (uint64_t k = 0; k < n_tensors; ++k) {
      GgufTensorInfo t;
      t.name = c.read_string(fmt::format("name of tensor {}", k));
      const std::string what = fmt::format("info of tensor '{}'", t.name);
      const uint32_t n_dims = c.read<uint32_t>(what);
      if (n_dims < 1 || n_dims > kMaxDims)
        bad(fmt::format("tensor '{}' has {} dimensions (1 to {} allowed)", t.name, n_dims,
                        kMaxDims));
      uint64_t numel = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const uint64_t ne = c.read<uint64_t>(what);
        if (ne > kMaxElements || (ne != 0 && numel > kMaxElements / ne))
          bad(fmt::format("tensor '{}' has an absurd size (dimension {} = {})", t.name, d, ne));
        numel *= ne;
        t.ne.push_back(static_cast<int64_t>(ne));
      }
      const uint32_t raw_type = c.read<uint32_t>(what);
      const auto traits = ggml_type_traits(raw_type);
      if (!traits)
        bad(fmt::format("tensor '{}' has unsupported type {}", t.name, ggml_type_name(raw_type)));
      t.type = traits->type;
      if (t.ne[0] % traits->block_size != 0)
        bad(fmt::format("tensor '{}' of type {} has row length {}, not a multiple of {}", t.name,
                        traits->name, t.ne[0], traits->block_size));
      t.offset = c.read<uint64_t>(what);
      if (t.offset % alignment != 0)
        bad(fmt::format("tensor '{}' offset {} is not a multiple of the alignment {}", t.name,
                        t.offset, alignment));
      t.nbytes = numel / static_cast<uint64_t>(traits->block_size) *
                 static_cast<uint64_t>(traits->block_bytes);
      if (!tensor_index.emplace(t.name, tensors.size()).second)
        bad(fmt::format("duplicate tensor '{}'", t.name));
      tensors.push_back(std::move(t));
    }

    data_offset = (c.pos() + alignment - 1) / alignment * alignment;
    for (const auto& t : tensors) {
      if (data_offset > file.size() || t.offset > file.size() - data_offset ||
          t.nbytes > file.size() - data_offset - t.offset)
        bad(fmt::format(
            "tensor '{}' data [{}, {}) lies past the end of the file ({} bytes; truncated?)",
            t.name, data_offset + t.offset, data_offset + t.offset + t.nbytes, file.size()));
    }
  }

  const GgufValue& value(const std::string& key) const {
    auto it = kv.find(key);
    if (it == kv.end()) bad(fmt::format("missing key '{}'", key));
    return it->second;
  }

  [[noreturn]] void wrong_type(const std::string& key, const GgufValue& v,
                               const char* wanted) const {
    std::string got = gguf_value_type_name(v.type);
    if (v.type == GgufValueType::kArray)
      got = fmt::format("array of {}", gguf_value_type_name(v.array_type));
    bad(fmt::format("key '{}' is {}, expected {}", key, got, wanted));
  }

  int64_t as_int(const std::string& key, const GgufValue& v) const {
    if (is_signed(v.type)) return v.i;
    if (is_unsigned(v.type)) {
      if (v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        bad(fmt::format("key '{}' value {} is too large", key, v.u));
      return static_cast<int64_t>(v.u);
    }
    wrong_type(key, v, "an integer");
  }
};

GgufFile::GgufFile() = default;
GgufFile::~GgufFile() = default;

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->impl_ = std::make_unique<Impl>(path);
  f->impl_->parse();
  return f;
}

const std::string& GgufFile::path() const {
  return impl_->path();
}
uint32_t GgufFile::version() const {
  return impl_->version;
}
uint32_t GgufFile::alignment() const {
  return impl_->alignment;
}
uint64_t GgufFile::data_offset() const {
  return impl_->data_offset;
}

bool GgufFile::has_key(const std::string& key) const {
  return impl_->kv.count(key) != 0;
}

const GgufValue* GgufFile::find_value(const std::string& key) const {
  auto it = impl_->kv.find(key);
  return it == impl_->kv.end() ? nullptr : &it->second;
}

std::vector<std::string> GgufFile::keys() const {
  return impl_->key_order;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = impl_->value(key);
  if (v.type != GgufValueType::kString) impl_->wrong_type(key, v, "a string");
  return v.s;
}

int64_t GgufFile::get_int(const std::string& key) const {
  return impl_->as_int(key, impl_->value(key));
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
  return has_key(key) ? get_int(key) : fallback;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = impl_->value(key);
  if (v.type == GgufValueType::kFloat32 || v.type == GgufValueType::kFloat64) return v.f;
  if (is_signed(v.type)) return static_cast<double>(v.i);
  if (is_unsigned(v.type)) return static_cast<double>(v.u);
  impl_->wrong_type(key, v, "a number");
}

double GgufFile::get_float(const std::string& key, double fallback) const {
  return has_key(key) ? get_float(key) : fallback;
}

bool GgufFile::get_bool(const std::string& key, bool fallback) const {
  const GgufValue* v = find_value(key);
  if (v == nullptr) return fallback;
  if (v->type != GgufValueType::kBool) impl_->wrong_type(key, *v, "a bool");
  return v->b;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = impl_->value(key);
  if (v.type != GgufValueType::kArray || v.array_type != GgufValueType::kString)
    impl_->wrong_type(key, v, "an array of strings");
  std::vector<std::string> out;
  out.reserve(v.array.size());
  for (const auto& e : v.array) out.push_back(e.s);
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = impl_->value(key);
  if (v.type != GgufValueType::kArray || !(is_signed(v.array_type) || is_unsigned(v.array_type)))
    impl_->wrong_type(key, v, "an array of integers");
  std::vector<int64_t> out;
  out.reserve(v.array.size());
  for (const auto& e : v.array) out.push_back(impl_->as_int(key, e));
  return out;
}

const std::vector<GgufTensorInfo>& GgufFile::tensors() const {
  return impl_->tensors;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = impl_->tensor_index.find(name);
  return it == impl_->tensor_index.end() ? nullptr : &impl_->tensors[it->second];
}

std::span<const uint8_t> GgufFile::tensor_bytes(const GgufTensorInfo& info) const {
  return impl_->file.bytes(impl_->data_offset + info.offset, info.nbytes,
                           fmt::format("tensor '{}'", info.name));
}

Tensor GgufFile::dequantize(const GgufTensorInfo& info) const {
  const auto bytes = tensor_bytes(info);
  Tensor t(info.shape());
  if (t.numel() == 0) return t;
  const int64_t row_len = info.ne[0];
  dequantize_rows(info.type, bytes.data(), t.data(), t.numel() / row_len, row_len);
  return t;
}

}  // namespace skim::io
