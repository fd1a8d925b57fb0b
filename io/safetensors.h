#pragma once
// safetensors (https://github.com/huggingface/safetensors): 8-byte little-endian header length,
// a JSON header {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
// {str: str}}, then the data section; offsets are relative to the start of the data section.
// The reader maps a single file or a sharded set named by a model.safetensors.index.json; the
// writer produces the layout of the reference implementation (tensors sorted by dtype size then
// name, header padded with spaces to 8 bytes) and writes atomically.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "src/core/tensor.h"

namespace skim::io {

enum class StDtype {
  kBool,
  kU8,
  kI8,
  kF8E5M2,
  kF8E4M3,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
};

size_t st_dtype_size(StDtype dtype);       // bytes per element
const char* st_dtype_name(StDtype dtype);  // "F32", "BF16", "U8"...
std::optional<StDtype> parse_st_dtype(std::string_view name);

// A tensor as stored: its bytes point into the mapped file and live as long as the reader.
struct StTensorView {
  StDtype dtype;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;  // numel * st_dtype_size(dtype) bytes, little-endian
  std::string file;                // the shard holding it
};

class SafetensorsReader {
 public:
  // `path` is a .safetensors file or a model.safetensors.index.json (shard names are resolved
  // relative to the index's folder). Validates every header: throws kBadInput naming the file
  // (and tensor) for a header length past the end, invalid JSON, unknown dtype, offsets out of
  // range, overlapping or not matching shape * dtype size, a missing shard, or an index entry
  // whose shard does not hold the tensor.
  static std::unique_ptr<SafetensorsReader> open(const std::string& path);

  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  const std::string& path() const;
  bool has(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  // Throws kBadInput naming the tensor and path if absent.
  StTensorView raw(const std::string& name) const;
  // F32, F16, BF16 or F64 converted to fp32; another dtype throws kBadInput.
  Tensor load_f32(const std::string& name) const;
  // "__metadata__" of the file (of all shards, merged, for a sharded set).
  const std::map<std::string, std::string>& metadata() const;

 private:
  SafetensorsReader();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class SafetensorsWriter {
 public:
  SafetensorsWriter();
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // An fp32 tensor stored as F32, F16 or BF16 (round to nearest even); pass by value so callers
  // can move a large tensor in. A duplicate name or another dtype throws kInternal.
  void add(const std::string& name, Tensor tensor, StDtype stored_as = StDtype::kF32);
  // Raw little-endian bytes of any dtype; bytes.size() must be numel(shape) * dtype size.
  void add_raw(const std::string& name, StDtype dtype, std::vector<int64_t> shape,
               std::span<const uint8_t> bytes);
  // Typed convenience for integer/packed data: add_typed<uint8_t>(name, StDtype::kU8, ...).
  template <typename T>
  void add_typed(const std::string& name, StDtype dtype, std::vector<int64_t> shape,
                 std::span<const T> values) {
    add_raw(name, dtype, std::move(shape),
            {reinterpret_cast<const uint8_t*>(values.data()), values.size_bytes()});
  }
  void set_metadata(const std::string& key, const std::string& value);

  // Writes the file atomically (io/atomic_file.h); throws kIo if the folder is not writable.
  void write(const std::string& path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skim::io
