#include "image/processor_json.hpp"

#include <cmath>
#include <cstdint>

#include <fmt/format.h>

#include "imgjudge/error.hpp"

namespace imgjudge::image::processor_json {

void bad_value(const std::string& source, const std::string& key, const std::string& why) {
  throw Error(ErrorCode::InvalidModel, fmt::format("{}: '{}' {}", source, key, why));
}

const Json* find(const Json& object, const char* key) {
  const auto it = object.find(key);
  return (it == object.end() || it->is_null()) ? nullptr : &*it;
}

bool read_bool(const Json& object, const char* key, bool fallback, const std::string& source) {
  const Json* value = find(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) bad_value(source, key, "must be true or false");
  return value->get<bool>();
}

int read_positive_int(const Json& value, const std::string& key, const std::string& source) {
  if (!value.is_number_integer() || value.get<std::int64_t>() < 1 || value.get<std::int64_t>() > 1 << 16) {
    bad_value(source, key, fmt::format("must be an integer in 1..65536, found {}", value.dump()));
  }
  return value.get<int>();
}

std::array<double, 3> read_channels(const Json& object, const char* key, const std::array<double, 3>& fallback,
                                    const std::string& source) {
  const Json* value = find(object, key);
  if (value == nullptr) return fallback;
  if (value->is_number()) {
    const double v = value->get<double>();
    return {v, v, v};
  }
  if (!value->is_array() || value->size() != 3) {
    bad_value(source, key, fmt::format("must be a number or a list of 3 numbers, found {}", value->dump()));
  }
  std::array<double, 3> out{};
  for (std::size_t c = 0; c < 3; ++c) {
    if (!(*value)[c].is_number() || !std::isfinite((*value)[c].get<double>())) {
      bad_value(source, key, "must hold finite numbers only");
    }
    out[c] = (*value)[c].get<double>();
  }
  return out;
}

std::string processor_type(const Json& root) {
  if (const Json* type = find(root, "image_processor_type"); type != nullptr && type->is_string()) {
    return type->get<std::string>();
  }
  if (const Json* type = find(root, "feature_extractor_type"); type != nullptr && type->is_string()) {
    std::string name = type->get<std::string>();
    const std::string suffix = "FeatureExtractor";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      name.replace(name.size() - suffix.size(), suffix.size(), "ImageProcessor");
    }
    return name;
  }
  return {};
}

}  // namespace imgjudge::image::processor_json
