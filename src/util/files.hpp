// Reading whole files with a size limit and clear errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace imgjudge::util {

/// An open file descriptor, closed on destruction.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  FileDescriptor& operator=(FileDescriptor&&) = delete;
  ~FileDescriptor();
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

/// The one way we open a path someone else named (an image, a constitution,
/// a model file, a labels file): read-only, and only if it is a regular file.
/// A FIFO, device or socket is refused without blocking (opening a FIFO waits
/// for a writer forever, beyond any deadline). Error(Io) naming the path and
/// what it is. `size`, if given, receives the file's size.
FileDescriptor open_regular_file(const std::string& path, std::uint64_t* size = nullptr);
/// open_regular_file() and close: for readers that open the path themselves.
void require_regular_file(const std::string& path);

/// Reads `path` completely (open_regular_file). Throws Error(Io) naming the path if it cannot be
/// read, Error(LimitExceeded) if it is larger than `max_bytes`.
std::vector<std::uint8_t> read_file_bytes(const std::string& path, std::size_t max_bytes);
std::string read_file_text(const std::string& path, std::size_t max_bytes = 64u << 20);

/// Joins a folder and a file name ("a" + "b.json" -> "a/b.json").
std::string join_path(const std::string& dir, const std::string& name);
bool file_exists(const std::string& path);

}  // namespace imgjudge::util
