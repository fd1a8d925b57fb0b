#pragma once
// GGUF (version 3) writer: key-values, then tensor infos, then the data, each tensor aligned to
// 32 bytes, the layout io/gguf.h reads and llama.cpp loads. Tensors are declared first (so every
// offset is known when the header is written) and their data streamed after, in the same order,
// so a model is written one tensor at a time. Written atomically (io/atomic_file.h).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/gguf.h"

namespace skim::io {

class GgufWriter {
 public:
  explicit GgufWriter(std::string path);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  void add_string(const std::string& key, const std::string& value);
  void add_u32(const std::string& key, uint32_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_string_array(const std::string& key, const std::vector<std::string>& values);
  void add_i32_array(const std::string& key, const std::vector<int32_t>& values);

  // A tensor of row-major `shape` (written as GGUF ne, fastest dimension first) and `type`
  // (F32, F16 or BF16). Declare every tensor before the first write_tensor.
  void declare_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type);
  // The next declared tensor's values, converted to its type; shape must match its declaration.
  void write_tensor(const std::string& name, std::span<const float> values);
  // After the last tensor: checks that every declared tensor was written and renames the file
  // into place.
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skim::io
