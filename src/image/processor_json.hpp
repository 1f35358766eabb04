// Reading the fields of a Hugging Face preprocessor_config.json as the image
// processor classes do: a missing key and a JSON null alike mean the class
// default; a value of the wrong type or range is Error(InvalidModel) naming
// the file and the key. Shared by every image processor (image/preprocess for
// CLIP/SigLIP/LLaVA tiles, models/processors for the families' own).
#pragma once

#include <array>
#include <string>

#include <nlohmann/json.hpp>

namespace imgjudge::image::processor_json {

using Json = nlohmann::json;

[[noreturn]] void bad_value(const std::string& source, const std::string& key, const std::string& why);

/// The value at `key`, or null when absent or JSON null.
const Json* find(const Json& object, const char* key);

bool read_bool(const Json& object, const char* key, bool fallback, const std::string& source);

/// An integer in 1..65536 (`key` names it in the error).
int read_positive_int(const Json& value, const std::string& key, const std::string& source);

/// image_mean / image_std: three finite numbers, or one number for every channel.
std::array<double, 3> read_channels(const Json& object, const char* key, const std::array<double, 3>& fallback,
                                    const std::string& source);

/// "image_processor_type", or an older "feature_extractor_type" with its
/// "FeatureExtractor" suffix read as "ImageProcessor" (empty when neither).
std::string processor_type(const Json& root);

}  // namespace imgjudge::image::processor_json
