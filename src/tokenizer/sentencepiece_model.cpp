#include "tokenizer/sentencepiece_model.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "util/files.hpp"

namespace imgjudge::tokenizer {
namespace {

// Real models are a few MB (InternLM2: 1.5 MB, Llama: 0.5 MB, Gemma: 4 MB).
constexpr std::size_t kMaxModelBytes = 64u << 20;

// ModelProto field 3 (normalizer_spec), a message of 2 bytes holding
// NormalizerSpec field 3 (add_dummy_prefix) = false. Protobuf merges a
// repeated singular message field into the earlier one, so appending it to a
// serialized model is NormalizerSpec.MergeFrom (sentencepiece_model.proto).
constexpr char kNoDummyPrefix[] = {0x1A, 0x02, 0x18, 0x00};

constexpr const char* kModuleName = "libimgjudge_sentencepiece.so";

// The C interface of sentencepiece_shim.cpp.
using Emit = void (*)(void* context, const char* data, std::size_t size);
struct Module {
  int (*load)(const char*, std::size_t, void**, Emit, void*) = nullptr;
  void (*free)(void*) = nullptr;
  int (*encode)(const void*, const char*, std::size_t, Emit, Emit, void*) = nullptr;
  int (*decode)(const void*, const char* const*, const std::size_t*, std::size_t, Emit, Emit, void*) = nullptr;
  int (*size)(const void*) = nullptr;
  const char* (*piece)(const void*, int, std::size_t*) = nullptr;
  void (*special_ids)(const void*, int*, int*, int*) = nullptr;
};

// Deep binding keeps libsentencepiece on its own protobuf; the sanitizer
// runtimes refuse it (their builds test torch-free processes, where no other
// protobuf is loaded).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL;
#else
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif
#else
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif

std::vector<std::string> module_candidates() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("IMGJUDGE_SENTENCEPIECE_MODULE"); env != nullptr && *env != '\0') paths.push_back(env);
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&module_candidates), &info) != 0 && info.dli_fname != nullptr) {
    const std::string self = info.dli_fname;
    const auto slash = self.rfind('/');
    if (slash != std::string::npos) paths.push_back(self.substr(0, slash + 1) + kModuleName);
  }
#ifdef IMGJUDGE_SENTENCEPIECE_MODULE_PATH
  paths.push_back(IMGJUDGE_SENTENCEPIECE_MODULE_PATH);
#endif
  paths.push_back(kModuleName);  // the loader's own search path
  return paths;
}

const Module& module() {
  static Module m;
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    void* handle = nullptr;
    std::string tried;
    for (const std::string& path : module_candidates()) {
      handle = dlopen(path.c_str(), kOpenFlags);
      if (handle != nullptr) break;
      const char* why = dlerror();
      tried += fmt::format("\n  {}: {}", path, why != nullptr ? why : "not loadable");
    }
    if (handle == nullptr) {
      failure = fmt::format("cannot load {} (libsentencepiece behind a local interface; set "
                            "IMGJUDGE_SENTENCEPIECE_MODULE to its path):{}",
                            kModuleName, tried);
      return;
    }
    const auto symbol = [&](const char* name) {
      void* address = dlsym(handle, name);
      if (address == nullptr) failure = fmt::format("{} has no symbol {}", kModuleName, name);
      return address;
    };
    m.load = reinterpret_cast<decltype(m.load)>(symbol("imgjudge_sp_load"));
    m.free = reinterpret_cast<decltype(m.free)>(symbol("imgjudge_sp_free"));
    m.encode = reinterpret_cast<decltype(m.encode)>(symbol("imgjudge_sp_encode"));
    m.decode = reinterpret_cast<decltype(m.decode)>(symbol("imgjudge_sp_decode"));
    m.size = reinterpret_cast<decltype(m.size)>(symbol("imgjudge_sp_size"));
    m.piece = reinterpret_cast<decltype(m.piece)>(symbol("imgjudge_sp_piece"));
    m.special_ids = reinterpret_cast<decltype(m.special_ids)>(symbol("imgjudge_sp_special_ids"));
  });
  if (!failure.empty()) throw Error(ErrorCode::Unsupported, "SentencePiece: " + failure);
  return m;
}

void append(void* context, const char* data, std::size_t size) { static_cast<std::string*>(context)->append(data, size); }
void push(void* context, const char* data, std::size_t size) {
  static_cast<std::vector<std::string>*>(context)->emplace_back(data, size);
}

// The message and the output share one context: errors go to `error`.
struct Call {
  std::vector<std::string> pieces;
  std::string text, error;
};
void call_push(void* context, const char* data, std::size_t size) { push(&static_cast<Call*>(context)->pieces, data, size); }
void call_text(void* context, const char* data, std::size_t size) { append(&static_cast<Call*>(context)->text, data, size); }
void call_error(void* context, const char* data, std::size_t size) { append(&static_cast<Call*>(context)->error, data, size); }

}  // namespace

SentencePieceModel::SentencePieceModel(const std::string& path, bool keep_dummy_prefix) : path_(path) {
  if (!util::file_exists(path)) throw Error(ErrorCode::InvalidModel, fmt::format("{}: file not found", path));
  std::string serialized = util::read_file_text(path, kMaxModelBytes);
  if (!keep_dummy_prefix) serialized.append(kNoDummyPrefix, sizeof(kNoDummyPrefix));
  const Module& m = module();
  Call call;
  if (m.load(serialized.data(), serialized.size(), &processor_, call_error, &call) != 0 || processor_ == nullptr) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: not a SentencePiece model ({})", path, call.error));
  }
  const int size = m.size(processor_);
  if (size <= 0) {
    m.free(processor_);
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: not a SentencePiece model (no pieces)", path));
  }
  pieces_.reserve(static_cast<std::size_t>(size));
  for (int id = 0; id < size; ++id) {
    std::size_t length = 0;
    const char* piece = m.piece(processor_, id, &length);
    pieces_.emplace_back(piece, length);
    ids_.emplace(pieces_.back(), id);  // the first id of a piece, as PieceToId
  }
  int unk = -1, bos = -1, eos = -1;
  m.special_ids(processor_, &unk, &bos, &eos);
  unk_id_ = unk;
  bos_id_ = bos;
  eos_id_ = eos;
}

SentencePieceModel::~SentencePieceModel() {
  if (processor_ != nullptr) module().free(processor_);
}

std::vector<std::string> SentencePieceModel::encode_pieces(std::string_view text) const {
  Call call;
  if (module().encode(processor_, text.data(), text.size(), call_push, call_error, &call) != 0) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("SentencePiece ({}) cannot encode the text: {}", path_, call.error));
  }
  return std::move(call.pieces);
}

std::string SentencePieceModel::decode_pieces(const std::vector<std::string>& pieces) const {
  std::vector<const char*> data;
  std::vector<std::size_t> sizes;
  for (const std::string& piece : pieces) {
    data.push_back(piece.data());
    sizes.push_back(piece.size());
  }
  Call call;
  if (module().decode(processor_, data.data(), sizes.data(), pieces.size(), call_text, call_error, &call) != 0) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("SentencePiece ({}) cannot decode: {}", path_, call.error));
  }
  return std::move(call.text);
}

std::optional<std::int32_t> SentencePieceModel::piece_id(std::string_view piece) const {
  const auto found = ids_.find(std::string(piece));
  if (found == ids_.end()) return std::nullopt;
  return found->second;
}

std::int32_t SentencePieceModel::piece_id_or_unknown(std::string_view piece) const {
  return piece_id(piece).value_or(unk_id_);
}

const std::string* SentencePieceModel::piece(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= pieces_.size()) return nullptr;
  return &pieces_[static_cast<std::size_t>(id)];
}

std::size_t SentencePieceModel::size() const { return pieces_.size(); }
std::int32_t SentencePieceModel::unk_id() const { return unk_id_; }
std::int32_t SentencePieceModel::bos_id() const { return bos_id_; }
std::int32_t SentencePieceModel::eos_id() const { return eos_id_; }

}  // namespace imgjudge::tokenizer
