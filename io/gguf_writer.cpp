#include "io/gguf_writer.h"

#include <cstring>

#include "io/atomic_file.h"
#include "src/core/error.h"
#include "src/core/half.h"

namespace skim::io {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kVersion = 3;
constexpr uint64_t kAlignment = 32;

class Bytes {
 public:
  template <typename T>
  void put(T v) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    b_.insert(b_.end(), raw, raw + sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b_.insert(b_.end(), s.begin(), s.end());
  }
  void pad_to(uint64_t alignment) {
    b_.resize((b_.size() + alignment - 1) / alignment * alignment);
  }
  std::vector<uint8_t>& bytes() { return b_; }

 private:
  std::vector<uint8_t> b_;
};

size_t element_bytes(GgmlType t) {
  switch (t) {
    case GgmlType::kF32:
      return 4;
    case GgmlType::kF16:
    case GgmlType::kBF16:
      return 2;
    default:
      fail(ErrorKind::kInternal, "GGUF writer: type {} is not written", static_cast<int>(t));
  }
}

struct Declared {
  std::string name;
  std::vector<int64_t> shape;
  GgmlType type;
  uint64_t offset;
  uint64_t nbytes;
};

}  // namespace

struct GgufWriter::Impl {
  std::string path;
  Bytes kv;
  uint64_t n_kv = 0;
  std::vector<Declared> tensors;
  uint64_t data_bytes = 0;
  std::unique_ptr<AtomicFile> file;  // open once the header is written
  size_t next = 0;                   // next tensor to write

  // Header, key-values and tensor infos, padded to the data section.
  void open() {
    Bytes header;
    header.put(kMagic);
    header.put(kVersion);
    header.put<uint64_t>(tensors.size());
    header.put<uint64_t>(n_kv);
    auto& h = header.bytes();
    h.insert(h.end(), kv.bytes().begin(), kv.bytes().end());
    for (const auto& t : tensors) {
      header.str(t.name);
      header.put(static_cast<uint32_t>(t.shape.size()));
      for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it)
        header.put(static_cast<uint64_t>(*it));
      header.put(static_cast<uint32_t>(t.type));
      header.put(t.offset);
    }
    header.pad_to(kAlignment);
    file = std::make_unique<AtomicFile>(path);
    file->write(std::span<const uint8_t>(header.bytes()));
  }
};

GgufWriter::GgufWriter(std::string path) : impl_(std::make_unique<Impl>()) {
  impl_->path = std::move(path);
}

GgufWriter::~GgufWriter() = default;

void GgufWriter::add_string(const std::string& key, const std::string& value) {
  impl_->kv.str(key);
  impl_->kv.put(static_cast<uint32_t>(GgufValueType::kString));
  impl_->kv.str(value);
  ++impl_->n_kv;
}

void GgufWriter::add_u32(const std::string& key, uint32_t value) {
  impl_->kv.str(key);
  impl_->kv.put(static_cast<uint32_t>(GgufValueType::kUint32));
  impl_->kv.put(value);
  ++impl_->n_kv;
}

void GgufWriter::add_f32(const std::string& key, float value) {
  impl_->kv.str(key);
  impl_->kv.put(static_cast<uint32_t>(GgufValueType::kFloat32));
  impl_->kv.put(value);
  ++impl_->n_kv;
}

void GgufWriter::add_bool(const std::string& key, bool value) {
  impl_->kv.str(key);
  impl_->kv.put(static_cast<uint32_t>(GgufValueType::kBool));
  impl_->kv.put(static_cast<uint8_t>(value ? 1 : 0));
  ++impl_->n_kv;
}

void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& values) {
  impl_->kv.str(key);
  impl_->kv.put(static_cast<uint32_t>(GgufValueType::kArray));
  impl_->kv.put(static_cast<uint32_t>(GgufValueType::kString));
  impl_->kv.put<uint64_t>(values.size());
  for (const auto& v : values) impl_->kv.str(v);
  ++impl_->n_kv;
}

void GgufWriter::add_i32_array(const std::string& key, const std::vector<int32_t>& values) {
  impl_->kv.str(key);
  impl_->kv.put(static_cast<uint32_t>(GgufValueType::kArray));
  impl_->kv.put(static_cast<uint32_t>(GgufValueType::kInt32));
  impl_->kv.put<uint64_t>(values.size());
  for (int32_t v : values) impl_->kv.put(v);
  ++impl_->n_kv;
}

void GgufWriter::declare_tensor(const std::string& name, const std::vector<int64_t>& shape,
                                GgmlType type) {
  SKIM_ASSERT(!impl_->file);
  const uint64_t nbytes = static_cast<uint64_t>(shape_numel(shape)) * element_bytes(type);
  impl_->tensors.push_back({name, shape, type, impl_->data_bytes, nbytes});
  impl_->data_bytes += (nbytes + kAlignment - 1) / kAlignment * kAlignment;
}

void GgufWriter::write_tensor(const std::string& name, std::span<const float> values) {
  Impl& m = *impl_;
  if (!m.file) m.open();
  SKIM_ASSERT(m.next < m.tensors.size());
  const Declared& t = m.tensors[m.next++];
  SKIM_ASSERT(t.name == name && static_cast<int64_t>(values.size()) == shape_numel(t.shape));
  std::vector<uint8_t> out((t.nbytes + kAlignment - 1) / kAlignment * kAlignment, 0);
  if (t.type == GgmlType::kF32) {
    std::memcpy(out.data(), values.data(), values.size_bytes());
  } else {
    auto* dst = reinterpret_cast<uint16_t*>(out.data());
    for (size_t i = 0; i < values.size(); ++i)
      dst[i] = t.type == GgmlType::kF16 ? float_to_half(values[i]) : float_to_bf16(values[i]);
  }
  m.file->write(std::span<const uint8_t>(out));
}

void GgufWriter::commit() {
  SKIM_ASSERT(impl_->next == impl_->tensors.size());
  if (!impl_->file) impl_->open();  // no tensors: the header alone
  impl_->file->commit();
}

}  // namespace skim::io
