// Memory-mapped safetensors files, parsed and validated without libtorch.
//
// Format: u64-LE header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets:[begin,end]}, "__metadata__": {...}}, then the raw data. Every
// field is validated before any byte is trusted (rules listed in the .cpp).
// Torch-free: compiled into imgjudge_core. runtime/tensor.hpp turns views into
// at::Tensor without copying.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace imgjudge::runtime {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };
const char* dtype_name(DType dtype) noexcept;      ///< safetensors spelling: "F32", "BF16", ...
inline bool is_floating(DType dtype) noexcept {
  return dtype == DType::F64 || dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}
std::size_t dtype_size(DType dtype) noexcept;      ///< bytes per element

/// Largest JSON header accepted. The format's reference reader allows 100 MB,
/// but a header that size is a million entries and gigabytes as a DOM; a real
/// shard of a 70B checkpoint has a few hundred KB.
constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 16u << 20;
/// Most JSON values in a header (about 8 per tensor: > 60k tensors per file).
constexpr std::size_t kMaxSafetensorsHeaderValues = 512u << 10;

class SafetensorsFile;

/// One tensor inside a mapped file: a read-only view, valid while `file` lives.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  const std::uint8_t* data = nullptr;  ///< Not necessarily aligned. Never write through it.
  std::size_t byte_size = 0;
  const SafetensorsFile* file = nullptr;  ///< Owner; file->shared_from_this() keeps it alive.
  std::int64_t numel() const noexcept;
};

/// A read-only memory mapping of one .safetensors file (shared by every view).
class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
 public:
  /// Maps and validates `path`. Throws Error(InvalidModel) naming the file and
  /// the offending tensor; Error(Io) if it cannot be opened.
  static std::shared_ptr<const SafetensorsFile> open(const std::string& path);
  /// Parses an in-memory buffer (tests, fuzzing). The buffer is copied; `name`
  /// stands in for the path in messages.
  static std::shared_ptr<const SafetensorsFile> from_bytes(const void* data, std::size_t size,
                                                           const std::string& name);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const noexcept { return path_; }
  const std::map<std::string, TensorView>& tensors() const noexcept { return tensors_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  bool contains(const std::string& name) const noexcept { return tensors_.count(name) != 0; }
  /// Throws Error(InvalidModel) "<path>: no tensor named '<name>'".
  const TensorView& at(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  void parse(const std::uint8_t* base, std::size_t size);
  std::string path_;
  void* mapping_ = nullptr;
  std::size_t mapping_size_ = 0;
  std::vector<std::uint8_t> owned_;  // from_bytes copies here
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// All tensors of a Hugging Face model folder: model.safetensors, or the
/// shards listed by model.safetensors.index.json ("weight_map": name -> file).
/// Cheap to copy (the mapped files are shared).
class SafetensorsCheckpoint {
 public:
  /// Throws Error(InvalidModel) for a folder with neither file, a missing or
  /// invalid shard, or an index that disagrees with its shards.
  static SafetensorsCheckpoint open_folder(const std::string& dir);
  /// A checkpoint made of already opened files (tests, single files).
  static SafetensorsCheckpoint from_files(std::vector<std::shared_ptr<const SafetensorsFile>> files,
                                          const std::string& folder);
  const TensorView* find(const std::string& name) const noexcept;
  /// Throws Error(InvalidModel) "<folder>: missing tensor '<name>'".
  const TensorView& at(const std::string& name) const;
  std::vector<std::string> names() const;  ///< Sorted.
  std::size_t size() const noexcept { return index_.size(); }
  const std::string& folder() const noexcept { return folder_; }

 private:
  void add(const std::shared_ptr<const SafetensorsFile>& file);
  std::string folder_;
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> index_;
};

/// A tensor to write: raw little-endian bytes (byte size must equal numel * dtype size).
struct TensorBytes {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;
};

/// Serialises tensors (sorted by name, 8-byte aligned data) to the safetensors format.
std::vector<std::uint8_t> serialize_safetensors(const std::vector<TensorBytes>& tensors,
                                                const std::map<std::string, std::string>& metadata = {});
/// serialize_safetensors() written to `path` (Error(Io) on failure).
void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace imgjudge::runtime
