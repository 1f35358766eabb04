#include "models/processors/owl_processor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "image/processor_json.hpp"
#include "imgjudge/error.hpp"
#include "util/files.hpp"
#include "util/json.hpp"

namespace imgjudge::models {
namespace {

using Json = nlohmann::json;
using namespace image::processor_json;

constexpr const char* kOwlv2 = "Owlv2ImageProcessor";
constexpr const char* kOwlVit = "OwlViTImageProcessor";

// ---- preprocessor_config.json ---------------------------------------------

// size / crop_size: {"height": h, "width": w}, or an int N for N x N (HF
// get_size_dict(default_to_square=True), what older configs rely on).
void read_size(const Json& object, const char* key, int& height, int& width, const std::string& source) {
  const Json* value = find(object, key);
  if (value == nullptr) return;
  if (value->is_number_integer()) {
    height = width = read_positive_int(*value, key, source);
  } else if (value->is_object() && value->contains("height") && value->contains("width")) {
    height = read_positive_int(value->at("height"), std::string(key) + ".height", source);
    width = read_positive_int(value->at("width"), std::string(key) + ".width", source);
  } else {
    bad_value(source, key, fmt::format("must be an integer or {{\"height\": h, \"width\": w}}, found {}",
                                       value->dump()));
  }
}

// ---- Owlv2: skimage-style resize as Owlv2ImageProcessor.resize runs it ------
//   filtered = scipy.ndimage.gaussian_filter(x, sigma, mode="mirror")   (float32 out)
//   out = scipy.ndimage.zoom(filtered, 1 / factors, order=1, mode="mirror", grid_mode=True)
//   out = clip(out, min(x), max(x))
// on the padded float32 image x [Hin, Win, 3], factors = (Hin/OH, Win/OW, 1),
// sigma = max(0, (factor - 1) / 2) per spatial axis.

// scipy.ndimage's "mirror" boundary: d c b | a b c d | c b a.
std::int64_t mirror(std::int64_t i, std::int64_t n) {
  if (n == 1) return 0;
  const std::int64_t period = 2 * n - 2;
  i = std::abs(i) % period;
  return i < n ? i : period - i;
}

// scipy.ndimage._gaussian_kernel1d(sigma, order=0, radius=int(4 * sigma + 0.5)),
// kept as its half w[0..r] (the kernel is symmetric: w[|k|] at offset k).
// numpy sums the kernel pairwise, this sequentially: the weights may differ in
// the last bit of a double, which moves a float32 result only by chance ~1e-9.
std::vector<double> gaussian_half_kernel(double sigma) {
  const auto radius = static_cast<std::int64_t>(4.0 * sigma + 0.5);
  const double coefficient = -0.5 / (sigma * sigma);
  std::vector<double> full;
  for (std::int64_t k = -radius; k <= radius; ++k) full.push_back(std::exp(coefficient * static_cast<double>(k * k)));
  double sum = 0;
  for (double w : full) sum += w;
  std::vector<double> half;
  for (std::int64_t k = 0; k <= radius; ++k) half.push_back(full[static_cast<std::size_t>(radius + k)] / sum);
  return half;
}

// One smoothing pass of a line with scipy's symmetric correlation (NI_Correlate1D:
// the centre tap first, then the outermost pair inwards, in double):
//   out[i] = x[i] w0 + sum_{j=r..1} (x[i-j] + x[i+j]) w_j,   mirror indices.
// `at(i)` reads the line; the result is rounded to float32 as the pass's
// float32 output array does.
template <typename Read>
float smooth_at(std::int64_t i, std::int64_t n, const std::vector<double>& half, const Read& at) {
  double sum = static_cast<double>(at(i)) * half[0];
  for (auto j = static_cast<std::int64_t>(half.size()) - 1; j >= 1; --j) {
    sum += (static_cast<double>(at(mirror(i - j, n))) + static_cast<double>(at(mirror(i + j, n)))) *
           half[static_cast<std::size_t>(j)];
  }
  return static_cast<float>(sum);
}

// Where output sample k of scipy.ndimage.zoom(order=1, mode="mirror",
// grid_mode=True) reads: c = (k + 0.5) * in / out - 0.5, mirrored about the
// edge samples, weights 1 - t and t (t = c - floor(c)) at floor(c) and the next.
struct ZoomTap {
  std::int64_t i0 = 0, i1 = 0;
  double w0 = 1, w1 = 0;
};

std::vector<ZoomTap> zoom_taps(std::int64_t in, std::int64_t out) {
  const double zoom = static_cast<double>(in) / static_cast<double>(out);
  std::vector<ZoomTap> taps(static_cast<std::size_t>(out));
  if (in == 1) return taps;  // every output reads the one sample
  for (std::int64_t k = 0; k < out; ++k) {
    double c = (static_cast<double>(k) + 0.5) * zoom - 0.5;
    if (c < 0) c = -c;
    if (c > static_cast<double>(in - 1)) c = 2.0 * static_cast<double>(in - 1) - c;
    ZoomTap& tap = taps[static_cast<std::size_t>(k)];
    tap.i0 = static_cast<std::int64_t>(std::floor(c));
    const double t = c - static_cast<double>(tap.i0);
    tap.i1 = tap.i0 + 1 > in - 1 ? 2 * (in - 1) - (tap.i0 + 1) : tap.i0 + 1;  // weight 0 there
    // scipy's order-1 spline weights: 1 - t, and the last one as 1 minus the
    // others (not t itself: they differ in the last bit of a double).
    tap.w0 = 1.0 - t;
    tap.w1 = 1.0 - tap.w0;
  }
  return taps;
}

// The rescaled image padded with 0.5 at the bottom/right to rows x cols, read
// one row [cols * 3] at a time (never materialised: a 16k-pixel photo padded
// to a square would take gigabytes).
class PaddedImage {
 public:
  PaddedImage(const Image& image, std::int64_t rows, std::int64_t cols, bool do_rescale, double rescale_factor)
      : image_(image), rows_(rows), cols_(cols) {
    // numpy: (uint8 as float64 * factor).astype(float32).
    for (int v = 0; v < 256; ++v) {
      value_[static_cast<std::size_t>(v)] =
          do_rescale ? static_cast<float>(static_cast<double>(v) * rescale_factor) : static_cast<float>(v);
    }
  }
  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }

  void row(std::int64_t y, float* out) const {
    std::fill(out, out + cols_ * 3, kPad);
    if (y >= image_.height) return;
    const std::uint8_t* source = &image_.rgb[static_cast<std::size_t>(y) * static_cast<std::size_t>(image_.width) * 3];
    for (std::size_t i = 0; i < static_cast<std::size_t>(image_.width) * 3; ++i) out[i] = value_[source[i]];
  }

  // min / max over the whole padded image, every channel (skimage clips the
  // resized image to the input's range).
  std::array<float, 2> range() const {
    std::uint8_t low = 255, high = 0;
    for (std::uint8_t v : image_.rgb) {
      low = std::min(low, v);
      high = std::max(high, v);
    }
    float lo = value_[low], hi = value_[high];
    if (rows_ > image_.height || cols_ > image_.width) {
      lo = std::min(lo, kPad);
      hi = std::max(hi, kPad);
    }
    return {lo, hi};
  }

  static constexpr float kPad = 0.5f;  // after rescale: mid-gray (transformers 4.50.3)

 private:
  const Image& image_;
  std::int64_t rows_, cols_;
  std::array<float, 256> value_{};
};

// Rows of gaussian_filter(padded, (sigma_rows, sigma_cols, 0)): the row pass
// (axis 0) first, then the column pass (axis 1), each rounded to float32.
// Only the rows and columns the zoom reads are computed; a small cache keeps
// the last rows, which consecutive output rows share.
class SmoothedRows {
 public:
  SmoothedRows(const PaddedImage& padded, double sigma_rows, double sigma_cols, std::vector<bool> needed_cols)
      : padded_(padded), needed_cols_(std::move(needed_cols)) {
    // scipy.ndimage.gaussian_filter skips an axis whose sigma is <= 1e-15.
    if (sigma_rows > 1e-15) row_kernel_ = gaussian_half_kernel(sigma_rows);
    if (sigma_cols > 1e-15) col_kernel_ = gaussian_half_kernel(sigma_cols);
  }

  const std::vector<float>& row(std::int64_t y) {
    if (auto it = cache_.find(y); it != cache_.end()) return it->second;
    if (cache_.size() >= 4) cache_.erase(cache_.begin());  // rows are asked in (almost) increasing order
    const std::int64_t cols = padded_.cols();
    const std::size_t width = static_cast<std::size_t>(cols) * 3;
    std::vector<float> vertical(width);
    if (row_kernel_.empty()) {
      padded_.row(y, vertical.data());
    } else {
      // Axis 0 at row y, every column: the centre row, then the pairs of rows
      // j above and below, outermost first (smooth_at's order).
      const auto radius = static_cast<std::int64_t>(row_kernel_.size()) - 1;
      std::vector<double> sum(width);
      std::vector<float> above(width), below(width);
      padded_.row(y, above.data());
      for (std::size_t k = 0; k < width; ++k) sum[k] = static_cast<double>(above[k]) * row_kernel_[0];
      for (std::int64_t j = radius; j >= 1; --j) {
        padded_.row(mirror(y - j, padded_.rows()), above.data());
        padded_.row(mirror(y + j, padded_.rows()), below.data());
        const double w = row_kernel_[static_cast<std::size_t>(j)];
        for (std::size_t k = 0; k < width; ++k) {
          sum[k] += (static_cast<double>(above[k]) + static_cast<double>(below[k])) * w;
        }
      }
      for (std::size_t k = 0; k < width; ++k) vertical[k] = static_cast<float>(sum[k]);
    }
    std::vector<float> out = vertical;
    if (!col_kernel_.empty()) {
      // Axis 1 at the needed columns, per channel.
      for (std::int64_t x = 0; x < cols; ++x) {
        if (!needed_cols_[static_cast<std::size_t>(x)]) continue;
        for (std::int64_t c = 0; c < 3; ++c) {
          out[static_cast<std::size_t>(x * 3 + c)] = smooth_at(
              x, cols, col_kernel_, [&](std::int64_t i) { return vertical[static_cast<std::size_t>(i * 3 + c)]; });
        }
      }
    }
    return cache_.emplace(y, std::move(out)).first->second;
  }

 private:
  const PaddedImage& padded_;
  std::vector<bool> needed_cols_;
  std::vector<double> row_kernel_, col_kernel_;  // empty: the axis is not smoothed
  std::map<std::int64_t, std::vector<float>> cache_;
};

image::FloatImage normalized(int height, int width, const std::vector<float>& hwc, const OwlImageProcessorConfig& config) {
  image::FloatImage out;
  out.channels = 3;
  out.height = height;
  out.width = width;
  const std::size_t plane = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  out.chw.resize(plane * 3);
  for (std::size_t c = 0; c < 3; ++c) {
    // numpy: mean / std as float32 arrays, then float32 arithmetic.
    const auto mean = static_cast<float>(config.image_mean[c]);
    const auto std = static_cast<float>(config.image_std[c]);
    for (std::size_t i = 0; i < plane; ++i) {
      const float x = hwc[i * 3 + c];
      out.chw[c * plane + i] = config.do_normalize ? (x - mean) / std : x;
    }
  }
  return out;
}

image::FloatImage owlv2_preprocess(const Image& image, const OwlImageProcessorConfig& config) {
  const std::int64_t side = std::max(image.height, image.width);
  const PaddedImage padded(image, config.do_pad ? side : image.height, config.do_pad ? side : image.width,
                           config.do_rescale, config.rescale_factor);
  const std::int64_t rows = padded.rows(), cols = padded.cols();
  if (!config.do_resize) {
    std::vector<float> hwc(static_cast<std::size_t>(rows * cols * 3));
    for (std::int64_t y = 0; y < rows; ++y) padded.row(y, &hwc[static_cast<std::size_t>(y * cols * 3)]);
    return normalized(static_cast<int>(rows), static_cast<int>(cols), hwc, config);
  }
  const std::int64_t out_rows = config.height, out_cols = config.width;
  const std::vector<ZoomTap> row_taps = zoom_taps(rows, out_rows), col_taps = zoom_taps(cols, out_cols);
  std::vector<bool> needed_cols(static_cast<std::size_t>(cols), false);
  for (const ZoomTap& tap : col_taps) needed_cols[static_cast<std::size_t>(tap.i0)] =
      needed_cols[static_cast<std::size_t>(tap.i1)] = true;
  const double factor_rows = static_cast<double>(rows) / static_cast<double>(out_rows);
  const double factor_cols = static_cast<double>(cols) / static_cast<double>(out_cols);
  SmoothedRows smoothed(padded, std::max(0.0, (factor_rows - 1) / 2), std::max(0.0, (factor_cols - 1) / 2),
                        std::move(needed_cols));
  const auto [low, high] = padded.range();

  std::vector<float> hwc(static_cast<std::size_t>(out_rows * out_cols * 3));
  for (std::int64_t oy = 0; oy < out_rows; ++oy) {
    const ZoomTap& ty = row_taps[static_cast<std::size_t>(oy)];
    // Copies: the cache may evict the first row while computing the second.
    const std::vector<float> top = smoothed.row(ty.i0);
    const std::vector<float>& bottom = smoothed.row(ty.i1);
    for (std::int64_t ox = 0; ox < out_cols; ++ox) {
      const ZoomTap& tx = col_taps[static_cast<std::size_t>(ox)];
      for (std::int64_t c = 0; c < 3; ++c) {
        const auto at = [&](const std::vector<float>& row, std::int64_t x) {
          return static_cast<double>(row[static_cast<std::size_t>(x * 3 + c)]);
        };
        // scipy's order: the taps in index order, each value times the row
        // weight, then the column weight, summed in double.
        const double v = at(top, tx.i0) * ty.w0 * tx.w0 + at(top, tx.i1) * ty.w0 * tx.w1 +
                         at(bottom, tx.i0) * ty.w1 * tx.w0 + at(bottom, tx.i1) * ty.w1 * tx.w1;
        hwc[static_cast<std::size_t>((oy * out_cols + ox) * 3 + c)] = std::clamp(static_cast<float>(v), low, high);
      }
    }
  }
  return normalized(config.height, config.width, hwc, config);
}

// OwlViTImageProcessor is CLIP's pipeline at a fixed height x width.
image::FloatImage owlvit_preprocess(const Image& image, const OwlImageProcessorConfig& config) {
  image::ImageProcessorConfig clip;
  clip.image_processor_type = kOwlVit;
  clip.do_resize = config.do_resize;
  clip.size_height = config.height;
  clip.size_width = config.width;
  clip.resample = config.resample;
  clip.do_center_crop = config.do_center_crop;
  clip.crop_height = config.crop_height;
  clip.crop_width = config.crop_width;
  clip.do_rescale = config.do_rescale;
  clip.rescale_factor = config.rescale_factor;
  clip.do_normalize = config.do_normalize;
  clip.image_mean = config.image_mean;
  clip.image_std = config.image_std;
  return image::preprocess(image, clip);
}

}  // namespace

OwlImageProcessorConfig OwlImageProcessorConfig::from_json(const std::string& json_text, const std::string& source) {
  const Json root = util::parse_json(json_text, source, ErrorCode::InvalidModel);
  if (!root.is_object()) throw Error(ErrorCode::InvalidModel, fmt::format("{}: expected a JSON object", source));
  const std::string type = processor_type(root);
  OwlImageProcessorConfig config;
  if (type == kOwlv2) {
    config.kind = Kind::Owlv2;
  } else if (type == kOwlVit) {
    config.kind = Kind::OwlVit;
    config.height = config.width = 768;
  } else {
    throw Error(ErrorCode::Unsupported, fmt::format("{}: image_processor_type \"{}\" is not an OWL processor ({}, {})",
                                                    source, type, kOwlv2, kOwlVit));
  }
  // Defaults are the classes' constructor defaults in transformers 4.50.3.
  config.do_resize = read_bool(root, "do_resize", true, source);
  read_size(root, "size", config.height, config.width, source);
  config.do_rescale = read_bool(root, "do_rescale", true, source);
  config.do_normalize = read_bool(root, "do_normalize", true, source);
  config.image_mean = read_channels(root, "image_mean", config.image_mean, source);
  config.image_std = read_channels(root, "image_std", config.image_std, source);
  for (double s : config.image_std) {
    if (s == 0.0) bad_value(source, "image_std", "must be non-zero");
  }
  if (const Json* factor = find(root, "rescale_factor"); factor != nullptr) {
    if (!factor->is_number() || !std::isfinite(factor->get<double>()) || factor->get<double>() <= 0) {
      bad_value(source, "rescale_factor", fmt::format("must be a positive number, found {}", factor->dump()));
    }
    config.rescale_factor = factor->get<double>();
  }
  if (const Json* resample = find(root, "resample"); resample != nullptr) {
    if (!resample->is_number_integer()) bad_value(source, "resample", "must be an integer PIL filter code");
    try {
      config.resample = image::resample_from_pil_code(resample->get<int>());
    } catch (const Error& e) {
      bad_value(source, "resample", e.what());
    }
  }
  if (config.kind == Kind::Owlv2) {
    config.do_pad = read_bool(root, "do_pad", true, source);
    config.do_center_crop = false;
  } else {
    config.do_pad = false;
    config.do_center_crop = read_bool(root, "do_center_crop", false, source);
    read_size(root, "crop_size", config.crop_height, config.crop_width, source);
  }
  return config;
}

OwlImageProcessorConfig OwlImageProcessorConfig::from_file(const std::string& path) {
  return from_json(util::read_file_text(path, 1u << 20), path);
}

OwlBoxFrame owl_box_frame(int height, int width, const OwlImageProcessorConfig& config) {
  if (config.kind == OwlImageProcessorConfig::Kind::Owlv2) {
    const int side = std::max(height, width);
    return config.do_pad ? OwlBoxFrame{float(side), 0, float(side), 0} : OwlBoxFrame{float(width), 0, float(height), 0};
  }
  // OwlViT: resized to (resized_h, resized_w), then maybe a window of the crop size.
  const double resized_h = config.do_resize ? config.height : height;
  const double resized_w = config.do_resize ? config.width : width;
  if (!config.do_center_crop) return {float(width), 0, float(height), 0};
  // HF center_crop: top = (h - crop_h) // 2 (negative: zero padding around the image).
  const double top = std::floor((resized_h - config.crop_height) / 2);
  const double left = std::floor((resized_w - config.crop_width) / 2);
  return {static_cast<float>(config.crop_width * width / resized_w), static_cast<float>(left * width / resized_w),
          static_cast<float>(config.crop_height * height / resized_h), static_cast<float>(top * height / resized_h)};
}

image::FloatImage owl_preprocess(const Image& image, const OwlImageProcessorConfig& config) {
  if (image.empty() || image.rgb.size() != static_cast<std::size_t>(image.width) * image.height * 3) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("OWL image processor: a {}x{} image with {} bytes is not a non-empty RGB image",
                            image.width, image.height, image.rgb.size()));
  }
  return config.kind == OwlImageProcessorConfig::Kind::Owlv2 ? owlv2_preprocess(image, config)
                                                            : owlvit_preprocess(image, config);
}

}  // namespace imgjudge::models
