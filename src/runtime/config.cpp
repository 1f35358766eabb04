#include "runtime/config.hpp"

#include <cmath>

#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "util/files.hpp"
#include "util/json.hpp"

namespace imgjudge::runtime {

HfConfig HfConfig::load(const std::string& path) {
  return HfConfig(util::parse_json(util::read_file_text(path, 16u << 20), path, ErrorCode::InvalidModel), path);
}

HfConfig::HfConfig(nlohmann::json json, std::string file, std::string key_prefix)
    : json_(std::move(json)), file_(std::move(file)), prefix_(std::move(key_prefix)) {
  if (!json_.is_object()) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: {} is not a JSON object", file_, prefix_.empty() ? "the file" : "'" + prefix_ + "'"));
  }
}

const HfConfig* HfConfig::holder(const std::string& key) const {
  auto it = json_.find(key);
  if (it != json_.end() && !it->is_null()) return this;
  return fallback_ ? fallback_->holder(key) : nullptr;
}

bool HfConfig::has(const std::string& key) const { return holder(key) != nullptr; }

bool HfConfig::is_null(const std::string& key) const {
  auto it = json_.find(key);
  if (it != json_.end()) return it->is_null();
  return fallback_ ? fallback_->is_null(key) : false;
}

HfConfig HfConfig::section(const std::string& key) const {
  const HfConfig* from = holder(key);
  if (from == nullptr) return HfConfig(nlohmann::json::object(), file_, prefix_ + key + ".");
  const auto& value = from->json_.at(key);
  if (!value.is_object()) type_error(key, "an object");
  return HfConfig(value, file_, from->prefix_ + key + ".");
}

HfConfig HfConfig::section_with_fallback(const std::string& key) const {
  HfConfig nested = section(key);
  nested.fallback_ = std::make_shared<const HfConfig>(*this);
  return nested;
}

void HfConfig::type_error(const std::string& key, const char* expected) const {
  const HfConfig* from = holder(key);
  const auto& value = from->json_.at(key);
  throw Error(ErrorCode::InvalidModel, fmt::format("{}: key '{}': expected {}, found {} {}", file_,
                                                   from->qualified(key), expected, value.type_name(),
                                                   value.dump().substr(0, 40)));
}

const nlohmann::json& HfConfig::require(const std::string& key) const {
  const HfConfig* from = holder(key);
  if (from == nullptr) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: missing key '{}'", file_, qualified(key)));
  }
  return from->json_.at(key);
}

std::int64_t HfConfig::get_int(const std::string& key) const {
  const auto& value = require(key);
  if (value.is_number_integer()) return value.get<std::int64_t>();
  // 1.0 is accepted as 1 (some exporters write integral floats).
  if (value.is_number_float() && std::floor(value.get<double>()) == value.get<double>() &&
      std::fabs(value.get<double>()) < 9e15) {
    return static_cast<std::int64_t>(value.get<double>());
  }
  type_error(key, "an integer");
}

std::int64_t HfConfig::get_int(const std::string& key, std::int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double HfConfig::get_double(const std::string& key) const {
  const auto& value = require(key);
  if (!value.is_number()) type_error(key, "a number");
  return value.get<double>();
}

double HfConfig::get_double(const std::string& key, double fallback) const {
  return has(key) ? get_double(key) : fallback;
}

bool HfConfig::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const auto& value = require(key);
  if (!value.is_boolean()) type_error(key, "a boolean");
  return value.get<bool>();
}

std::string HfConfig::get_string(const std::string& key) const {
  const auto& value = require(key);
  if (!value.is_string()) type_error(key, "a string");
  return value.get<std::string>();
}

std::string HfConfig::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

std::vector<double> HfConfig::get_doubles(const std::string& key, const std::vector<double>& fallback) const {
  if (!has(key)) return fallback;
  const auto& value = require(key);
  if (!value.is_array()) type_error(key, "an array of numbers");
  std::vector<double> out;
  for (const auto& item : value) {
    if (!item.is_number()) type_error(key, "an array of numbers");
    out.push_back(item.get<double>());
  }
  return out;
}

}  // namespace imgjudge::runtime
