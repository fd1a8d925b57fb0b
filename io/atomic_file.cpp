#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "src/core/error.h"

namespace skim::io {

namespace {

std::string parent_folder(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

AtomicFile::AtomicFile(std::string final_path) : final_path_(std::move(final_path)) {
  // Same folder as the final name, so the rename never crosses file systems; hidden, so a
  // leftover after a crash is easy to tell apart. open() with a mode (not mkstemp's 0600) so the
  // file gets the usual permissions under the process umask.
  static std::atomic<uint64_t> counter{0};
  const std::filesystem::path folder(parent_folder(final_path_));
  const std::string base = std::filesystem::path(final_path_).filename().string();
  for (int attempt = 0;; ++attempt) {
    temp_path_ = (folder / fmt::format(".{}.tmp.{}.{}", base, ::getpid(), counter++)).string();
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) break;
    if (errno != EEXIST || attempt >= 100) {
      const int err = errno;
      temp_path_.clear();
      fail(ErrorKind::kIo, "{}: cannot create a temporary file in {}: {}", final_path_,
           folder.string(), std::strerror(err));
    }
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void AtomicFile::write(std::span<const uint8_t> bytes) {
  if (fd_ < 0) fail(ErrorKind::kInternal, "{}: write after commit", final_path_);
  const uint8_t* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(ErrorKind::kIo, "{}: write failed after {} bytes: {}", final_path_, written_,
           std::strerror(errno));
    }
    p += n;
    left -= static_cast<size_t>(n);
    written_ += static_cast<uint64_t>(n);
  }
}

void AtomicFile::write(std::string_view text) {
  write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

void AtomicFile::commit() {
  if (fd_ < 0) fail(ErrorKind::kInternal, "{}: commit twice", final_path_);
  if (::fsync(fd_) != 0)
    fail(ErrorKind::kIo, "{}: fsync failed: {}", final_path_, std::strerror(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0)
    fail(ErrorKind::kIo, "{}: close failed: {}", final_path_, std::strerror(errno));
  if (std::rename(temp_path_.c_str(), final_path_.c_str()) != 0)
    fail(ErrorKind::kIo, "{}: cannot rename {} to it: {}", final_path_, temp_path_,
         std::strerror(errno));
  committed_ = true;
  fsync_directory(parent_folder(final_path_));
}

void write_file_atomic(const std::string& path, std::string_view contents) {
  AtomicFile file(path);
  file.write(contents);
  file.commit();
}

void fsync_directory(const std::string& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(ErrorKind::kIo, "{}: cannot open folder: {}", folder, std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems refuse fsync on a folder (EINVAL); the rename itself already happened.
  if (rc != 0 && err != EINVAL)
    fail(ErrorKind::kIo, "{}: fsync of folder failed: {}", folder, std::strerror(err));
}

}  // namespace skim::io
