#pragma once
// Writes a file so that its final name holds either the complete new content or nothing new:
// the bytes go to a temporary name in the same folder, are flushed to disk (fsync), and only then
// renamed over the final name. A crash or an error mid-write never leaves a half-written file
// under the final name. Every writer in the project goes through this.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace skim::io {

class AtomicFile {
 public:
  // Creates the temporary file next to `final_path`; throws kIo naming the path if the folder
  // does not exist or is not writable.
  explicit AtomicFile(std::string final_path);
  // Removes the temporary file unless commit() succeeded.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends bytes; throws kIo naming the final path on a short write.
  void write(std::span<const uint8_t> bytes);
  void write(std::string_view text);
  uint64_t bytes_written() const { return written_; }

  // fsync, close, rename to the final name, fsync the folder. Throws kIo on failure (the
  // temporary file is then removed by the destructor).
  void commit();

  const std::string& final_path() const { return final_path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  std::string final_path_;
  std::string temp_path_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// The whole file in one call, atomically.
void write_file_atomic(const std::string& path, std::string_view contents);

// fsync of a folder, so that a rename inside it survives a crash. Throws kIo.
void fsync_directory(const std::string& folder);

}  // namespace skim::io
