// safetensors reader/writer. Validation rules, in the order they are checked:
//   1. the file holds at least the 8-byte header length N;
//   2. N <= kMaxSafetensorsHeaderBytes and 8 + N <= file size (truncated header);
//   3. the header is a JSON object;
//   4. "__metadata__", if present, is an object of string values;
//   5. every other entry is an object with a known "dtype", a "shape" of
//      integers >= 0 whose product (times the dtype size) does not overflow, and
//      "data_offsets" [begin, end] with begin <= end <= size of the data area;
//   6. end - begin == numel * dtype size;
//   7. no two tensors' byte spans overlap.
// Only after all of that is a TensorView handed out.
#include "runtime/safetensors.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <set>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "util/files.hpp"
#include "util/json.hpp"

namespace imgjudge::runtime {
namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  std::size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::Bool, "BOOL", 1},
};

const DTypeInfo* find_dtype(const std::string& name) {
  for (const auto& info : kDTypes) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw Error(ErrorCode::InvalidModel, fmt::format("{}: {}", where, what));
}

std::uint64_t read_u64_le(const std::uint8_t* p) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

// A JSON number that is a non-negative integer, or nullopt-like failure via flag.
bool as_unsigned(const nlohmann::json& value, std::uint64_t& out) {
  if (value.is_number_unsigned()) {
    out = value.get<std::uint64_t>();
    return true;
  }
  if (value.is_number_integer() && value.get<std::int64_t>() >= 0) {
    out = static_cast<std::uint64_t>(value.get<std::int64_t>());
    return true;
  }
  return false;
}

}  // namespace

const char* dtype_name(DType dtype) noexcept {
  for (const auto& info : kDTypes) {
    if (info.dtype == dtype) return info.name;
  }
  return "?";
}

std::size_t dtype_size(DType dtype) noexcept {
  for (const auto& info : kDTypes) {
    if (info.dtype == dtype) return info.size;
  }
  return 0;
}

std::int64_t TensorView::numel() const noexcept {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;  // validated not to overflow when parsed
  return n;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(ErrorCode::Io, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    throw Error(ErrorCode::Io, fmt::format("{}: not a regular file", path));
  }
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  const auto size = static_cast<std::size_t>(info.st_size);
  if (size < 8) {
    ::close(fd);
    fail(path, fmt::format("file is {} bytes, too small for the 8-byte header length", size));
  }
  // MAP_PRIVATE + PROT_READ: the file is never modified and views are const.
  void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapping == MAP_FAILED) {
    throw Error(ErrorCode::Io, fmt::format("{}: mmap failed: {}", path, std::strerror(errno)));
  }
  file->mapping_ = mapping;
  file->mapping_size_ = size;
  file->parse(static_cast<const std::uint8_t*>(mapping), size);
  return file;
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::from_bytes(const void* data,
                                                                   std::size_t size,
                                                                   const std::string& name) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = name;
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  file->owned_.assign(bytes, bytes + size);
  file->parse(file->owned_.data(), file->owned_.size());
  return file;
}

void SafetensorsFile::parse(const std::uint8_t* base, std::size_t size) {
  const std::string& where = path_;
  if (size < 8) fail(where, fmt::format("file is {} bytes, too small for the 8-byte header length", size));
  const std::uint64_t header_len = read_u64_le(base);
  if (header_len > kMaxSafetensorsHeaderBytes) {
    fail(where, fmt::format("header length {} exceeds the limit of {} bytes", header_len,
                            kMaxSafetensorsHeaderBytes));
  }
  if (header_len > size - 8) {
    fail(where, fmt::format("truncated header: header length {} but only {} bytes follow",
                            header_len, size - 8));
  }
  const auto* header_begin = reinterpret_cast<const char*>(base + 8);
  // Bounds the header's DOM (~100 bytes per value) to ~50 MB.
  util::JsonLimits limits;
  limits.max_values = kMaxSafetensorsHeaderValues;
  const nlohmann::json header =
      util::parse_json(std::string_view(header_begin, header_len), where + ": header", ErrorCode::InvalidModel, limits);
  if (!header.is_object()) fail(where, "header is not a JSON object");

  const std::uint8_t* data_area = base + 8 + header_len;
  const std::uint64_t data_size = size - 8 - header_len;
  struct Span {
    std::uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Span> spans;

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(where, "\"__metadata__\" is not an object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) fail(where, fmt::format("__metadata__ '{}' is not a string", key));
        metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string tensor_where = fmt::format("{}: tensor '{}'", where, name);
    if (!entry.is_object()) fail(tensor_where, "entry is not an object");
    if (!entry.contains("dtype") || !entry["dtype"].is_string()) fail(tensor_where, "no string \"dtype\"");
    const std::string dtype_text = entry["dtype"].get<std::string>();
    const DTypeInfo* dtype = find_dtype(dtype_text);
    if (dtype == nullptr) fail(tensor_where, fmt::format("unknown dtype \"{}\"", dtype_text));

    if (!entry.contains("shape") || !entry["shape"].is_array()) fail(tensor_where, "no \"shape\" array");
    TensorView view;
    view.name = name;
    view.dtype = dtype->dtype;
    view.file = this;
    std::uint64_t byte_count = dtype->size;
    for (const auto& dim : entry["shape"]) {
      std::uint64_t d = 0;
      if (!as_unsigned(dim, d)) fail(tensor_where, fmt::format("shape {} has a negative or non-integer dimension", entry["shape"].dump()));
      if (d != 0 && byte_count > std::numeric_limits<std::int64_t>::max() / d) {
        fail(tensor_where, fmt::format("shape {} overflows", entry["shape"].dump()));
      }
      byte_count *= d;
      view.shape.push_back(static_cast<std::int64_t>(d));
    }

    const auto& offsets = entry.contains("data_offsets") ? entry["data_offsets"] : nlohmann::json();
    std::uint64_t begin = 0, end = 0;
    if (!offsets.is_array() || offsets.size() != 2 || !as_unsigned(offsets[0], begin) ||
        !as_unsigned(offsets[1], end)) {
      fail(tensor_where, "\"data_offsets\" is not [begin, end] of non-negative integers");
    }
    if (begin > end) fail(tensor_where, fmt::format("data_offsets [{}, {}] has begin > end", begin, end));
    if (end > data_size) {
      fail(tensor_where, fmt::format("data_offsets [{}, {}] past the end of the data area ({} bytes)",
                                     begin, end, data_size));
    }
    if (end - begin != byte_count) {
      fail(tensor_where, fmt::format("{} bytes in data_offsets but shape {} x {} needs {} bytes",
                                     end - begin, entry["shape"].dump(), dtype->name, byte_count));
    }
    view.data = data_area + begin;
    view.byte_size = static_cast<std::size_t>(byte_count);
    auto inserted = tensors_.emplace(name, std::move(view));
    spans.push_back({begin, end, &inserted.first->first});
  }

  // Overlapping spans would alias two tensors (a crafted file could make one
  // weight silently depend on another). Empty tensors overlap nothing.
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  const Span* previous = nullptr;
  for (const auto& span : spans) {
    if (span.begin == span.end) continue;
    if (previous != nullptr && span.begin < previous->end) {
      fail(where, fmt::format("overlapping data of tensors '{}' [{}, {}] and '{}' [{}, {}]",
                              *previous->name, previous->begin, previous->end, *span.name,
                              span.begin, span.end));
    }
    previous = &span;
  }
}

const TensorView& SafetensorsFile::at(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail(path_, fmt::format("no tensor named '{}'", name));
  return it->second;
}

// ---------------------------------------------------------------------------

void SafetensorsCheckpoint::add(const std::shared_ptr<const SafetensorsFile>& file) {
  files_.push_back(file);
  for (const auto& [name, view] : file->tensors()) {
    auto [it, inserted] = index_.emplace(name, &view);
    if (!inserted) {
      fail(folder_, fmt::format("tensor '{}' appears in both {} and {}", name,
                                it->second->file->path(), file->path()));
    }
  }
}

SafetensorsCheckpoint SafetensorsCheckpoint::from_files(
    std::vector<std::shared_ptr<const SafetensorsFile>> files, const std::string& folder) {
  SafetensorsCheckpoint checkpoint;
  checkpoint.folder_ = folder;
  for (const auto& file : files) checkpoint.add(file);
  return checkpoint;
}

SafetensorsCheckpoint SafetensorsCheckpoint::open_folder(const std::string& dir) {
  SafetensorsCheckpoint checkpoint;
  checkpoint.folder_ = dir;
  const std::string single = util::join_path(dir, "model.safetensors");
  const std::string index_path = util::join_path(dir, "model.safetensors.index.json");
  if (util::file_exists(single)) {
    checkpoint.add(SafetensorsFile::open(single));
    return checkpoint;
  }
  if (!util::file_exists(index_path)) {
    fail(dir, "no model.safetensors or model.safetensors.index.json");
  }
  const nlohmann::json index =
      util::parse_json(util::read_file_text(index_path, 64u << 20), index_path, ErrorCode::InvalidModel);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    fail(index_path, "no \"weight_map\" object");
  }
  std::map<std::string, std::string> shard_of;  // tensor -> shard file name
  std::set<std::string> shards;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) fail(index_path, fmt::format("weight_map '{}' is not a file name", name));
    const std::string file = shard.get<std::string>();
    // Shards live in the folder itself: no paths, so an index cannot point elsewhere.
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..") {
      fail(index_path, fmt::format("weight_map '{}': invalid shard name \"{}\"", name, file));
    }
    shard_of[name] = file;
    shards.insert(file);
  }
  for (const auto& shard : shards) {
    const std::string path = util::join_path(dir, shard);
    if (!util::file_exists(path)) fail(index_path, fmt::format("missing shard \"{}\"", shard));
    checkpoint.add(SafetensorsFile::open(path));
  }
  for (const auto& [name, shard] : shard_of) {
    auto it = checkpoint.index_.find(name);
    if (it == checkpoint.index_.end() || it->second->file->path() != util::join_path(dir, shard)) {
      fail(index_path, fmt::format("tensor '{}' is not in its shard \"{}\"", name, shard));
    }
  }
  return checkpoint;
}

const TensorView* SafetensorsCheckpoint::find(const std::string& name) const noexcept {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorView& SafetensorsCheckpoint::at(const std::string& name) const {
  const TensorView* view = find(name);
  if (view == nullptr) fail(folder_, fmt::format("missing tensor '{}'", name));
  return *view;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, view] : index_) out.push_back(name);
  return out;
}

// ---------------------------------------------------------------------------

std::vector<std::uint8_t> serialize_safetensors(const std::vector<TensorBytes>& tensors,
                                                const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorBytes*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const TensorBytes* t : sorted) {
    std::uint64_t expected = dtype_size(t->dtype);
    for (auto d : t->shape) {
      if (d < 0) throw Error(ErrorCode::InvalidArgument, fmt::format("tensor '{}': negative dimension", t->name));
      expected *= static_cast<std::uint64_t>(d);
    }
    if (expected != t->bytes.size()) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("tensor '{}': {} bytes given, shape needs {}", t->name, t->bytes.size(), expected));
    }
    header[t->name] = {{"dtype", dtype_name(t->dtype)},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + expected}}};
    offset += expected;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data area 8-byte aligned
  std::vector<std::uint8_t> out;
  out.reserve(8 + text.size() + offset);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(text.size()) >> (8 * i)));
  out.insert(out.end(), text.begin(), text.end());
  for (const TensorBytes* t : sorted) out.insert(out.end(), t->bytes.begin(), t->bytes.end());
  return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const auto bytes = serialize_safetensors(tensors, metadata);
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file || std::fwrite(bytes.data(), 1, bytes.size(), file.get()) != bytes.size()) {
    throw Error(ErrorCode::Io, fmt::format("{}: cannot write: {}", path, std::strerror(errno)));
  }
  if (std::fflush(file.get()) != 0) {
    throw Error(ErrorCode::Io, fmt::format("{}: cannot write: {}", path, std::strerror(errno)));
  }
}

}  // namespace imgjudge::runtime
