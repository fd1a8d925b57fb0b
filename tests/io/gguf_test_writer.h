#pragma once
// A small GGUF (v2/v3) writer for tests: key-values of every type, tensors of raw bytes, and
// access to the encoded bytes so tests can corrupt them. Little-endian hosts only.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "io/gguf.h"

namespace skim::test {

// Little-endian byte buffer.
struct ByteBuf {
  std::vector<uint8_t> b;
  template <typename T>
  void put(T v) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    b.insert(b.end(), raw, raw + sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
  void raw(const std::vector<uint8_t>& bytes) { b.insert(b.end(), bytes.begin(), bytes.end()); }
};

class GgufTestWriter {
 public:
  using VT = io::GgufValueType;

  explicit GgufTestWriter(uint32_t version = 3) : version_(version) {}

  // A key with an already encoded value (for nested arrays or deliberately broken values).
  void add_raw(const std::string& key, uint32_t type, const std::vector<uint8_t>& payload) {
    kv_.str(key);
    kv_.put<uint32_t>(type);
    kv_.raw(payload);
    ++n_kv_;
  }
  template <typename T>
  void add_scalar(const std::string& key, VT type, T v) {
    ByteBuf p;
    p.put<T>(v);
    add_raw(key, static_cast<uint32_t>(type), p.b);
  }
  void add_u8(const std::string& k, uint8_t v) { add_scalar(k, VT::kUint8, v); }
  void add_i8(const std::string& k, int8_t v) { add_scalar(k, VT::kInt8, v); }
  void add_u16(const std::string& k, uint16_t v) { add_scalar(k, VT::kUint16, v); }
  void add_i16(const std::string& k, int16_t v) { add_scalar(k, VT::kInt16, v); }
  void add_u32(const std::string& k, uint32_t v) { add_scalar(k, VT::kUint32, v); }
  void add_i32(const std::string& k, int32_t v) { add_scalar(k, VT::kInt32, v); }
  void add_u64(const std::string& k, uint64_t v) { add_scalar(k, VT::kUint64, v); }
  void add_i64(const std::string& k, int64_t v) { add_scalar(k, VT::kInt64, v); }
  void add_f32(const std::string& k, float v) { add_scalar(k, VT::kFloat32, v); }
  void add_f64(const std::string& k, double v) { add_scalar(k, VT::kFloat64, v); }
  void add_bool(const std::string& k, bool v) { add_scalar(k, VT::kBool, uint8_t{v}); }
  void add_string(const std::string& k, const std::string& v) {
    ByteBuf p;
    p.str(v);
    add_raw(k, static_cast<uint32_t>(VT::kString), p.b);
  }
  template <typename T>
  void add_array(const std::string& k, VT elem, const std::vector<T>& values) {
    ByteBuf p;
    p.put<uint32_t>(static_cast<uint32_t>(elem));
    p.put<uint64_t>(values.size());
    for (const T& v : values) p.put<T>(v);
    add_raw(k, static_cast<uint32_t>(VT::kArray), p.b);
  }
  void add_string_array(const std::string& k, const std::vector<std::string>& values) {
    ByteBuf p;
    p.put<uint32_t>(static_cast<uint32_t>(VT::kString));
    p.put<uint64_t>(values.size());
    for (const auto& v : values) p.str(v);
    add_raw(k, static_cast<uint32_t>(VT::kArray), p.b);
  }
  // Sets the data alignment and writes general.alignment.
  void set_alignment(uint32_t a) {
    alignment_ = a;
    add_u32("general.alignment", a);
  }

  // A tensor of raw bytes; `ne` in GGUF order (ne[0] = row length). Returns its data offset.
  uint64_t add_tensor(const std::string& name, const std::vector<int64_t>& ne, uint32_t type,
                      const std::vector<uint8_t>& bytes) {
    while (data_.b.size() % alignment_ != 0) data_.put<uint8_t>(0);
    const uint64_t offset = data_.b.size();
    info_.str(name);
    info_.put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (int64_t d : ne) info_.put<uint64_t>(static_cast<uint64_t>(d));
    info_.put<uint32_t>(type);
    info_.put<uint64_t>(offset);
    data_.raw(bytes);
    ++n_tensors_;
    return offset;
  }
  // An F32 tensor; `values` row-major with shape reversed(ne).
  uint64_t add_f32_tensor(const std::string& name, const std::vector<int64_t>& ne,
                          const std::vector<float>& values) {
    std::vector<uint8_t> bytes(values.size() * sizeof(float));
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return add_tensor(name, ne, static_cast<uint32_t>(io::GgmlType::kF32), bytes);
  }

  // Byte offsets where the tensor infos start and end and where the data section starts.
  uint64_t info_offset() const { return 24 + kv_.b.size(); }
  uint64_t info_end() const { return info_offset() + info_.b.size(); }
  uint64_t data_offset() const { return (info_end() + alignment_ - 1) / alignment_ * alignment_; }

  std::vector<uint8_t> bytes() const {
    ByteBuf out;
    out.put<uint32_t>(0x46554747u);  // "GGUF"
    out.put<uint32_t>(version_);
    out.put<uint64_t>(n_tensors_);
    out.put<uint64_t>(n_kv_);
    out.raw(kv_.b);
    out.raw(info_.b);
    while (out.b.size() % alignment_ != 0) out.put<uint8_t>(0);
    out.raw(data_.b);
    return out.b;
  }

  void write(const std::string& path) const { write_bytes(path, bytes()); }

  static void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  }

 private:
  uint32_t version_;
  uint32_t alignment_ = 32;
  uint64_t n_kv_ = 0;
  uint64_t n_tensors_ = 0;
  ByteBuf kv_, info_, data_;
};

}  // namespace skim::test
