#pragma once
// A read-only memory map of a whole file. Readers parse headers from it and dequantize tensors
// straight out of it, so a 140 GB model costs address space, not memory.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace skim::io {

class MappedFile {
 public:
  // Throws kIo naming the path if it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }
  const uint8_t* data() const { return data_; }
  // Bytes [offset, offset + length); throws kBadInput naming the file and `what` if the range
  // runs past the end (a truncated file).
  std::span<const uint8_t> bytes(uint64_t offset, uint64_t length, const std::string& what) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace skim::io
