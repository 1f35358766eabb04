#include "util/files.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "imgjudge/error.hpp"

namespace imgjudge::util {

namespace {

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

FileDescriptor open_regular_file(const std::string& path, std::uint64_t* size) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
  // forever, before fstat could tell what it is.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) throw Error(ErrorCode::Io, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  FileDescriptor file(fd);
  struct stat info {};
  if (::fstat(fd, &info) != 0) throw Error(ErrorCode::Io, fmt::format("{}: cannot stat: {}", path, std::strerror(errno)));
  if (!S_ISREG(info.st_mode)) {
    throw Error(ErrorCode::Io, fmt::format("{}: is {}, not a regular file", path, file_kind(info.st_mode)));
  }
  // Back to blocking reads (regular files never block, but be explicit).
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  if (size != nullptr) *size = static_cast<std::uint64_t>(info.st_size);
  return file;
}

void require_regular_file(const std::string& path) { open_regular_file(path); }

std::vector<std::uint8_t> read_file_bytes(const std::string& path, std::size_t max_bytes) {
  std::uint64_t size = 0;
  const FileDescriptor file = open_regular_file(path, &size);
  if (size > max_bytes) {
    throw Error(ErrorCode::LimitExceeded, fmt::format("{}: file is larger than the limit of {} bytes", path, max_bytes));
  }
  std::vector<std::uint8_t> bytes;
  bytes.reserve(static_cast<std::size_t>(size));
  // Read until end of file rather than trusting st_size: a file may grow or shrink.
  std::uint8_t chunk[1 << 16];
  while (true) {
    const ssize_t got = ::read(file.get(), chunk, sizeof chunk);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::Io, fmt::format("{}: read error: {}", path, std::strerror(errno)));
    }
    if (got == 0) break;
    if (bytes.size() + static_cast<std::size_t>(got) > max_bytes) {
      throw Error(ErrorCode::LimitExceeded,
                  fmt::format("{}: file is larger than the limit of {} bytes", path, max_bytes));
    }
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  return bytes;
}

std::string read_file_text(const std::string& path, std::size_t max_bytes) {
  auto bytes = read_file_bytes(path, max_bytes);
  return std::string(bytes.begin(), bytes.end());
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

bool file_exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

}  // namespace imgjudge::util
