// `imgjudge inspect-image FILE...`: decodes each file exactly as the judge
// would (same DecodeOptions defaults) and reports what decoding found, or why
// it refused the file.
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "imgjudge/error.hpp"
#include "imgjudge/image.hpp"
#include "util/files.hpp"

namespace imgjudge::cli {
namespace {

const char* kInspectImageHelp = R"(usage: imgjudge inspect-image [--json] [--max-pixels N] [--max-bytes N] FILE...

Decodes each image as `imgjudge judge` would (EXIF orientation applied, alpha
composited onto white, default limits) and prints its format, encoded size,
stored and final size, orientation, colour model, alpha and content hash
("sha256:<hex>", as verdicts write it), or the error category and message.

--json: {"file", "ok": true, "format", ..., "content_hash": "sha256:<hex>"}, or
{"file", "ok": false, "error": {"code", "message"}} for a file that failed.

options:
  --json           one JSON object per file (JSON lines)
  --max-pixels N   decoding limit on width * height (default 67108864)
  --max-bytes N    limit on the encoded file size (default 67108864)

exit status: 0 every file decoded, 1 some file failed, 2 usage error
)";

std::uint64_t parse_count(const Args& args, const char* name, std::uint64_t fallback) {
  const auto text = args.value(name);
  if (!text) return fallback;
  std::size_t used = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(*text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text->size() || value == 0 || text->front() == '-') {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("--{} must be a positive integer, not '{}'", name, *text));
  }
  return value;
}

struct Inspection {
  std::size_t encoded_bytes = 0;
  DecodeInfo info;
  Image image;
};

// The JSON text of a string that may hold invalid UTF-8 (file names).
std::string json_string(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void print_success(const std::string& path, const Inspection& r, bool as_json) {
  const DecodeInfo& info = r.info;
  const bool rotated = info.exif_orientation != 1;  // inspect-image always applies it
  if (as_json) {
    nlohmann::ordered_json line = {
        {"file", path},
        {"ok", true},
        {"format", image_format_name(info.format)},
        {"encoded_bytes", r.encoded_bytes},
        {"encoded_width", info.encoded_width},
        {"encoded_height", info.encoded_height},
        {"exif_orientation", info.exif_orientation},
        {"orientation_applied", rotated},
        {"width", r.image.width},
        {"height", r.image.height},
        {"color_model", info.color_model},
        {"bit_depth", info.bit_depth},
        {"alpha", info.had_alpha},
        {"content_hash", "sha256:" + r.image.content_hash()},
    };
    fmt::print("{}\n", line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
    return;
  }
  const std::string orientation =
      rotated ? fmt::format("orientation {} applied -> {}x{}", info.exif_orientation, r.image.width,
                            r.image.height)
              : std::string("upright");
  fmt::print("{}: {}, {} bytes, {}x{} stored, {}, {} {}-bit, {}, {}\n", one_line(path),
             image_format_name(info.format), r.encoded_bytes, info.encoded_width, info.encoded_height,
             orientation, info.color_model, info.bit_depth,
             info.had_alpha ? "alpha composited" : "no alpha", "sha256:" + r.image.content_hash());
}

void print_failure(const std::string& path, const Error& error, bool as_json) {
  if (as_json) {
    fmt::print("{{\"file\":{},\"ok\":false,\"error\":{{\"code\":\"{}\",\"message\":{}}}}}\n", json_string(path),
               error_code_name(error.code()), json_string(error.what()));
    return;
  }
  fmt::print("{}: ERROR [{}] {}\n", one_line(path), error_code_name(error.code()),
             one_line(without_path(error.what(), path)));
}

}  // namespace

int run_inspect_image(const Argv& argv) {
  const Args args(argv, {"max-pixels", "max-bytes"}, {"json", "help"});
  if (args.flag("help")) {
    fmt::print("{}", kInspectImageHelp);
    return 0;
  }
  if (args.positionals().empty()) {
    fmt::print(stderr, "imgjudge inspect-image: no files given\n{}", kInspectImageHelp);
    return 2;
  }
  DecodeOptions options;  // the judge's defaults, except for the limits asked for
  options.limits.max_pixels = parse_count(args, "max-pixels", options.limits.max_pixels);
  options.limits.max_encoded_bytes =
      static_cast<std::size_t>(parse_count(args, "max-bytes", options.limits.max_encoded_bytes));
  const bool as_json = args.flag("json");

  int failures = 0;
  for (const std::string& path : args.positionals()) {
    try {
      Inspection result;
      const std::vector<std::uint8_t> bytes = util::read_file_bytes(path, options.limits.max_encoded_bytes);
      result.encoded_bytes = bytes.size();
      result.image = decode_image(bytes.data(), bytes.size(), options, &result.info);
      print_success(path, result, as_json);
    } catch (const Error& error) {
      ++failures;
      print_failure(path, error, as_json);
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace imgjudge::cli
