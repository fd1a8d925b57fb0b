#pragma once
// Flat little-endian serialisation of plain values and vectors, for moving quantized layers
// between ranks and for checkpoint files.
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "src/core/error.h"

namespace skim::pipeline {

class ByteWriter {
 public:
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  template <typename T>
  void put_vector(const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    put<int64_t>(static_cast<int64_t>(v.size()));
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    bytes_.insert(bytes_.end(), p, p + v.size() * sizeof(T));
  }
  void put_string(const std::string& s) {
    put<int64_t>(static_cast<int64_t>(s.size()));
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, std::string what)
      : data_(data), size_(size), what_(std::move(what)) {}
  template <typename T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;
  }
  template <typename T>
  std::vector<T> get_vector() {
    const int64_t n = get<int64_t>();
    if (n < 0 || static_cast<uint64_t>(n) > (size_ - pos_) / sizeof(T))
      fail(ErrorKind::kBadInput, "{}: corrupt: vector of {} elements past the end", what_, n);
    std::vector<T> v(static_cast<size_t>(n));
    if (n > 0)
      std::memcpy(v.data(), take(static_cast<size_t>(n) * sizeof(T)), v.size() * sizeof(T));
    return v;
  }
  std::string get_string() {
    const auto v = get_vector<char>();
    return std::string(v.begin(), v.end());
  }
  bool done() const { return pos_ == size_; }

 private:
  const uint8_t* take(size_t n) {
    if (n > size_ - pos_) fail(ErrorKind::kBadInput, "{}: corrupt: truncated", what_);
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string what_;
};

}  // namespace skim::pipeline
