#include "util/files.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sys/stat.h>

#include <fmt/format.h>

#include "imgjudge/error.hpp"

namespace imgjudge::util {

std::vector<std::uint8_t> read_file_bytes(const std::string& path, std::size_t max_bytes) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    throw Error(ErrorCode::Io, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  }
  if (S_ISDIR(info.st_mode)) throw Error(ErrorCode::Io, fmt::format("{}: is a directory", path));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) {
    throw Error(ErrorCode::Io, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  }
  std::vector<std::uint8_t> bytes;
  // Read in chunks rather than trusting st_size: pipes and growing files lie.
  std::uint8_t chunk[1 << 16];
  while (true) {
    std::size_t got = std::fread(chunk, 1, sizeof chunk, file.get());
    if (got == 0) break;
    if (bytes.size() + got > max_bytes) {
      throw Error(ErrorCode::LimitExceeded,
                  fmt::format("{}: file is larger than the limit of {} bytes", path, max_bytes));
    }
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  if (std::ferror(file.get())) {
    throw Error(ErrorCode::Io, fmt::format("{}: read error", path));
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
