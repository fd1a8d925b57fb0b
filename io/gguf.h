#pragma once
// GGUF (version 2 and 3) reader: metadata key-values and tensors, mapped from disk.
// Layout as llama.cpp defines it: header, key-values, tensor infos, alignment padding, data.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/mapped_file.h"
#include "src/core/tensor.h"

namespace skim::io {

// ggml_type values as stored in the file.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30,
};

// Key-value types as stored in the file.
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// One metadata value. Which member holds it depends on `type`: unsigned integers in `u`, signed
// integers in `i`, floats in `f`, bool in `b`, strings in `s`, arrays in `array` (all elements of
// type `array_type`, nested arrays allowed).
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0.0;
  bool b = false;
  std::string s;
  GgufValueType array_type = GgufValueType::kUint8;
  std::vector<GgufValue> array;
};

const char* gguf_value_type_name(GgufValueType type);

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // GGUF order: ne[0] is the fastest-varying (row length)
  GgmlType type;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t nbytes = 0;
  // Row-major shape: ne reversed, so a weight with ne = [in, out] is [out, in].
  std::vector<int64_t> shape() const;
};

class GgufFile {
 public:
  // Parses and validates the header, key-values and tensor infos; throws kBadInput naming the
  // file and what is wrong (bad magic, unsupported version, truncation, unknown tensor type,
  // tensor data outside the file).
  static std::unique_ptr<GgufFile> open(const std::string& path);

  const std::string& path() const;
  uint32_t version() const;

  bool has_key(const std::string& key) const;
  // Typed getters: a missing key or a value of another type throws kBadInput naming key and file.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;  // any integer type
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key) const;  // f32, f64 or an integer type
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  // The raw value, nullptr if absent.
  const GgufValue* find_value(const std::string& key) const;
  std::vector<std::string> keys() const;  // in file order

  uint32_t alignment() const;
  uint64_t data_offset() const;  // start of the data section in the file
  // The tensor's bytes as stored (already checked to lie inside the file).
  std::span<const uint8_t> tensor_bytes(const GgufTensorInfo& info) const;

  const std::vector<GgufTensorInfo>& tensors() const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;  // nullptr if absent
  // The tensor dequantized to fp32 with shape info.shape().
  Tensor dequantize(const GgufTensorInfo& info) const;

  ~GgufFile();

 private:
  GgufFile();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skim::io
