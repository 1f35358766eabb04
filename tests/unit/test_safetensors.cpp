// safetensors reader: valid files round-trip; every class of malformed file is
// rejected with Error(InvalidModel) and a message naming the problem.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "imgjudge/error.hpp"
#include "runtime/safetensors.hpp"

using imgjudge::Error;
using imgjudge::ErrorCode;
using namespace imgjudge::runtime;

namespace {

// A file from a literal header and data area: u64-LE length, header, data.
std::vector<std::uint8_t> raw_file(const std::string& header, std::size_t data_bytes,
                                   std::uint64_t claimed_length = UINT64_MAX) {
  const std::uint64_t length = claimed_length == UINT64_MAX ? header.size() : claimed_length;
  std::vector<std::uint8_t> out(8);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(length >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.resize(out.size() + data_bytes, 0x5a);
  return out;
}

std::string error_of(const std::vector<std::uint8_t>& bytes, ErrorCode* code = nullptr) {
  try {
    SafetensorsFile::from_bytes(bytes.data(), bytes.size(), "test.safetensors");
  } catch (const Error& e) {
    if (code != nullptr) *code = e.code();
    return e.what();
  }
  return "";
}

// Asserts the bytes are rejected as InvalidModel with `fragment` in the message.
void require_rejected(const std::vector<std::uint8_t>& bytes, const std::string& fragment) {
  ErrorCode code = ErrorCode::Internal;
  const std::string message = error_of(bytes, &code);
  INFO("message: " << message);
  REQUIRE(!message.empty());
  CHECK(code == ErrorCode::InvalidModel);
  CHECK(message.find(fragment) != std::string::npos);
  CHECK(message.find("test.safetensors") != std::string::npos);
}

std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("imgjudge_st_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

TensorBytes f32_tensor(const std::string& name, std::vector<std::int64_t> shape, float start) {
  TensorBytes t{name, DType::F32, shape, {}};
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  std::vector<float> values(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = start + static_cast<float>(i);
  t.bytes.resize(values.size() * 4);
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

}  // namespace

TEST_CASE("safetensors: written files read back with shapes, data and metadata", "[unit][safetensors]") {
  auto bytes = serialize_safetensors({f32_tensor("b", {2, 3}, 1.0f), f32_tensor("a", {4}, 10.0f),
                                      {"empty", DType::BF16, {0, 5}, {}}},
                                     {{"format", "pt"}});
  auto file = SafetensorsFile::from_bytes(bytes.data(), bytes.size(), "mem");
  REQUIRE(file->tensors().size() == 3);
  CHECK(file->metadata().at("format") == "pt");
  const auto& b = file->at("b");
  CHECK(b.shape == std::vector<std::int64_t>{2, 3});
  CHECK(b.numel() == 6);
  CHECK(b.byte_size == 24);
  CHECK(b.file == file.get());
  float values[6];
  std::memcpy(values, b.data, sizeof values);
  CHECK(values[0] == 1.0f);
  CHECK(values[5] == 6.0f);
  CHECK(file->at("empty").numel() == 0);
  CHECK_THROWS_AS(file->at("nope"), Error);
}

TEST_CASE("safetensors: a golden fixture file opens through mmap", "[unit][safetensors]") {
  auto file = SafetensorsFile::open(std::string(IMGJUDGE_TEST_DATA_DIR) + "/parity/clip/inputs.safetensors");
  const auto& ids = file->at("input_ids");
  CHECK(ids.dtype == DType::I64);
  CHECK(ids.shape == std::vector<std::int64_t>{2, 16});
  CHECK(file->at("pixel_values").shape == std::vector<std::int64_t>{1, 3, 32, 32});
}

TEST_CASE("safetensors: file shorter than the header length field", "[unit][safetensors]") {
  require_rejected({1, 2, 3}, "too small for the 8-byte header length");
}

TEST_CASE("safetensors: header length beyond the limit (overflow)", "[unit][safetensors]") {
  require_rejected(raw_file("{}", 0, UINT64_MAX - 3), "exceeds the limit");
  require_rejected(raw_file("{}", 0, kMaxSafetensorsHeaderBytes + 1), "exceeds the limit");
}

TEST_CASE("safetensors: a header of a million empty entries is refused before it becomes a DOM", "[unit][safetensors]") {
  std::string header = "{";
  for (int i = 0; i < 600000; ++i) header += "\"t" + std::to_string(i) + "\":{},";
  header += "\"end\":{}}";
  REQUIRE(header.size() < kMaxSafetensorsHeaderBytes);
  require_rejected(raw_file(header, 0), "JSON with more than " + std::to_string(kMaxSafetensorsHeaderValues) + " values");
}

TEST_CASE("safetensors: a header nested deeper than any real one is refused without recursion", "[unit][safetensors]") {
  // 1 MB of brackets overflowed the stack of nlohmann's recursive parser and of dump().
  require_rejected(raw_file("{\"a\":" + std::string(1u << 20, '[') + std::string(1u << 20, ']') + "}", 0),
                   "JSON nested deeper than 64 levels");
}

TEST_CASE("safetensors: truncated header", "[unit][safetensors]") {
  require_rejected(raw_file("{\"a\":", 0, 100), "truncated header");
}

TEST_CASE("safetensors: header that is not JSON", "[unit][safetensors]") {
  require_rejected(raw_file("{\"a\": [1, 2", 0), "header: invalid JSON");
  require_rejected(raw_file("[1, 2]", 0), "not a JSON object");
}

TEST_CASE("safetensors: unknown dtype", "[unit][safetensors]") {
  require_rejected(raw_file(R"({"w":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}})", 4),
                   "unknown dtype \"F7\"");
  require_rejected(raw_file(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4), "no string \"dtype\"");
}

TEST_CASE("safetensors: negative and overflowing shapes", "[unit][safetensors]") {
  require_rejected(raw_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
                   "negative or non-integer dimension");
  require_rejected(raw_file(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4),
                   "negative or non-integer dimension");
  require_rejected(
      raw_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4),
      "overflows");
}

TEST_CASE("safetensors: data offsets past the end of the file", "[unit][safetensors]") {
  require_rejected(raw_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
                   "past the end of the data area");
  require_rejected(
      raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551616]}})", 8),
      "data_offsets");
  require_rejected(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8),
                   "begin > end");
  require_rejected(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 8),
                   "\"data_offsets\" is not [begin, end]");
}

TEST_CASE("safetensors: byte span differs from shape x dtype", "[unit][safetensors]") {
  require_rejected(raw_file(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 16),
                   "12 bytes in data_offsets but shape [2,2] x F32 needs 16 bytes");
}

TEST_CASE("safetensors: overlapping tensors", "[unit][safetensors]") {
  require_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                            12),
                   "overlapping data of tensors 'a'");
}

TEST_CASE("safetensors: bad __metadata__", "[unit][safetensors]") {
  require_rejected(raw_file(R"({"__metadata__":{"format":1}})", 0), "__metadata__ 'format' is not a string");
  require_rejected(raw_file(R"({"__metadata__":[]})", 0), "\"__metadata__\" is not an object");
}

TEST_CASE("safetensors: kept hostile files are rejected", "[unit][safetensors]") {
  const std::string dir = std::string(IMGJUDGE_TEST_DATA_DIR) + "/hostile/safetensors/";
  const std::pair<const char*, const char*> cases[] = {
      {"header_length_overflow.safetensors", "exceeds the limit"},
      {"truncated_header.safetensors", "truncated header"},
      {"offsets_past_end.safetensors", "past the end of the data area"},
      {"overlapping.safetensors", "overlapping data"},
      {"size_mismatch.safetensors", "needs 16 bytes"},
  };
  for (const auto& [name, fragment] : cases) {
    INFO(name);
    try {
      SafetensorsFile::open(dir + name);
      FAIL("accepted a hostile file");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::InvalidModel);
      CHECK(std::string(e.what()).find(fragment) != std::string::npos);
      CHECK(std::string(e.what()).find(name) != std::string::npos);
    }
  }
}

TEST_CASE("safetensors: sharded checkpoint via index.json", "[unit][safetensors]") {
  const std::string dir = temp_dir("sharded");
  write_safetensors(dir + "/model-00001-of-00002.safetensors", {f32_tensor("x.weight", {2}, 0)});
  write_safetensors(dir + "/model-00002-of-00002.safetensors", {f32_tensor("y.weight", {3}, 5)});
  const std::string index = R"({"metadata":{},"weight_map":{"x.weight":"model-00001-of-00002.safetensors",)"
                            R"("y.weight":"model-00002-of-00002.safetensors"}})";
  write_bytes(dir + "/model.safetensors.index.json", std::vector<std::uint8_t>(index.begin(), index.end()));
  auto checkpoint = SafetensorsCheckpoint::open_folder(dir);
  CHECK(checkpoint.names() == std::vector<std::string>{"x.weight", "y.weight"});
  CHECK(checkpoint.at("y.weight").numel() == 3);
  CHECK(checkpoint.find("z") == nullptr);
  try {
    checkpoint.at("z");
    FAIL("found a missing tensor");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidModel);
    CHECK(std::string(e.what()).find("missing tensor 'z'") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("safetensors: missing shard, wrong index, duplicate tensor, empty folder", "[unit][safetensors]") {
  const std::string dir = temp_dir("badshards");
  auto expect_invalid = [&](const std::string& index, const std::string& fragment) {
    write_bytes(dir + "/model.safetensors.index.json", std::vector<std::uint8_t>(index.begin(), index.end()));
    try {
      SafetensorsCheckpoint::open_folder(dir);
      FAIL("accepted: " << index);
    } catch (const Error& e) {
      INFO(e.what());
      CHECK(e.code() == ErrorCode::InvalidModel);
      CHECK(std::string(e.what()).find(fragment) != std::string::npos);
    }
  };
  try {
    SafetensorsCheckpoint::open_folder(dir);
    FAIL("accepted an empty folder");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidModel);
    CHECK(std::string(e.what()).find("no model.safetensors") != std::string::npos);
  }
  write_safetensors(dir + "/a.safetensors", {f32_tensor("x", {2}, 0)});
  write_safetensors(dir + "/b.safetensors", {f32_tensor("x", {2}, 0)});
  expect_invalid(R"({"weight_map":{"x":"a.safetensors","y":"gone.safetensors"}})", "missing shard \"gone.safetensors\"");
  expect_invalid(R"({"weight_map":{"y":"a.safetensors"}})", "tensor 'y' is not in its shard");
  expect_invalid(R"({"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})", "appears in both");
  expect_invalid(R"({"weight_map":{"x":"../a.safetensors"}})", "invalid shard name");
  expect_invalid(R"({"weight_map":[1]})", "no \"weight_map\" object");
  expect_invalid(R"({"weight_map":)", "invalid JSON");
  std::filesystem::remove_all(dir);
}
