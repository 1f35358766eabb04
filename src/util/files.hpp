// Reading whole files with a size limit and clear errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace imgjudge::util {

/// Reads `path` completely. Throws Error(Io) naming the path if it cannot be
/// read, Error(LimitExceeded) if it is larger than `max_bytes`.
std::vector<std::uint8_t> read_file_bytes(const std::string& path, std::size_t max_bytes);
std::string read_file_text(const std::string& path, std::size_t max_bytes = 64u << 20);

/// Joins a folder and a file name ("a" + "b.json" -> "a/b.json").
std::string join_path(const std::string& dir, const std::string& name);
bool file_exists(const std::string& path);

}  // namespace imgjudge::util
