// Pillow-exact resampling; see resize.hpp for the semantics. The arithmetic
// below (float vs double, where rounding happens, accumulation order) follows
// Pillow's C code on purpose: changing any of it changes output bytes.
#include "image/resize.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "imgjudge/error.hpp"

namespace imgjudge::image {
namespace {

constexpr int kChannels = 3;
constexpr double kPi = 3.14159265358979323846;  // M_PI, which strict C++17 need not define
// Fixed-point fraction bits: 8 bits of pixel, 2 bits of headroom for filters
// whose partial sums leave [0, 1] (negative lobes), sign bit.
constexpr int kPrecisionBits = 32 - 8 - 2;

// ---- Filters (kernels on the unit grid, and their support radius) ----------

double box_kernel(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

double bilinear_kernel(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double hamming_kernel(double x) {
  x = std::fabs(x);
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x *= kPi;
  // Pillow writes the window constants as floats; keep them floats.
  return std::sin(x) / x * (0.54f + 0.46f * std::cos(x));
}

double bicubic_kernel(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= kPi;
  return std::sin(x) / x;
}

double lanczos_kernel(double x) {
  return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0;
}

struct Filter {
  double (*kernel)(double);
  double support;
};

Filter filter_for(Resample filter) {
  switch (filter) {
    case Resample::Box: return {box_kernel, 0.5};
    case Resample::Bilinear: return {bilinear_kernel, 1.0};
    case Resample::Hamming: return {hamming_kernel, 1.0};
    case Resample::Bicubic: return {bicubic_kernel, 2.0};
    case Resample::Lanczos: return {lanczos_kernel, 3.0};
    case Resample::Nearest: break;
  }
  throw Error(ErrorCode::Internal, "resize: no convolution kernel for NEAREST");
}

// ---- Coefficients -----------------------------------------------------------

// For each output position: the first source index and how many source
// pixels contribute, and their fixed-point weights (ksize slots, zero padded).
struct Coefficients {
  int ksize = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<std::int32_t> weights;  // out_size * ksize
};

// Pillow's precompute_coeffs() followed by normalize_coeffs_8bpc(). `in0` and
// `in1` are floats as in Pillow, so (in1 - in0) is a float subtraction.
Coefficients precompute(int in_size, float in0, float in1, int out_size, const Filter& filter) {
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filter_scale = std::max(scale, 1.0);  // stretch the kernel only when shrinking
  const double support = filter.support * filter_scale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(std::size_t(out_size));
  c.count.resize(std::size_t(out_size));
  c.weights.assign(std::size_t(out_size) * std::size_t(c.ksize), 0);
  std::vector<double> w(std::size_t(c.ksize));
  const double inv_filter_scale = 1.0 / filter_scale;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    // (int) truncates toward zero, as in Pillow ("round the value").
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double sum = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[std::size_t(x)] = filter.kernel((x + xmin - center + 0.5) * inv_filter_scale);
      sum += w[std::size_t(x)];
    }
    std::int32_t* out = &c.weights[std::size_t(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double normalized = sum != 0.0 ? w[std::size_t(x)] / sum : w[std::size_t(x)];
      const double fixed = normalized * (1 << kPrecisionBits);
      out[x] = static_cast<std::int32_t>(normalized < 0 ? -0.5 + fixed : 0.5 + fixed);
    }
    c.first[std::size_t(xx)] = xmin;
    c.count[std::size_t(xx)] = std::max(xmax, 0);
  }
  return c;
}

inline std::uint8_t clip8(std::int32_t accumulator) {
  return static_cast<std::uint8_t>(std::clamp(accumulator >> kPrecisionBits, 0, 255));
}

// ---- The two passes -----------------------------------------------------------

// Rows [row0, row0 + rows) of `in`, resampled horizontally to `c.first.size()` columns.
Image resample_horizontal(const Image& in, int row0, int rows, const Coefficients& c) {
  Image out;
  out.width = static_cast<int>(c.first.size());
  out.height = rows;
  out.rgb.resize(std::size_t(out.width) * rows * kChannels);
  for (int y = 0; y < rows; ++y) {
    const std::uint8_t* line = &in.rgb[std::size_t(row0 + y) * in.width * kChannels];
    std::uint8_t* dst = &out.rgb[std::size_t(y) * out.width * kChannels];
    for (int xx = 0; xx < out.width; ++xx) {
      const std::int32_t* k = &c.weights[std::size_t(xx) * c.ksize];
      const std::uint8_t* src = line + std::size_t(c.first[std::size_t(xx)]) * kChannels;
      for (int ch = 0; ch < kChannels; ++ch) {
        std::int32_t sum = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < c.count[std::size_t(xx)]; ++x) sum += src[x * kChannels + ch] * k[x];
        dst[xx * kChannels + ch] = clip8(sum);
      }
    }
  }
  return out;
}

// `c.first` indexes rows of `in` (already shifted when `in` is a band of rows).
Image resample_vertical(const Image& in, const Coefficients& c) {
  Image out;
  out.width = in.width;
  out.height = static_cast<int>(c.first.size());
  out.rgb.resize(std::size_t(out.width) * out.height * kChannels);
  const std::size_t row_bytes = std::size_t(in.width) * kChannels;
  for (int yy = 0; yy < out.height; ++yy) {
    const std::int32_t* k = &c.weights[std::size_t(yy) * c.ksize];
    const std::uint8_t* src = &in.rgb[std::size_t(c.first[std::size_t(yy)]) * row_bytes];
    std::uint8_t* dst = &out.rgb[std::size_t(yy) * row_bytes];
    for (std::size_t i = 0; i < row_bytes; ++i) {
      std::int32_t sum = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < c.count[std::size_t(yy)]; ++y) sum += src[y * row_bytes + i] * k[y];
      dst[i] = clip8(sum);
    }
  }
  return out;
}

// Pillow's ImagingResampleInner().
Image resample_convolution(const Image& in, int out_w, int out_h, const Filter& filter,
                           const Box& box) {
  const bool need_horizontal = out_w != in.width || box.x0 != 0 || box.x1 != out_w;
  const bool need_vertical = out_h != in.height || box.y0 != 0 || box.y1 != out_h;
  Coefficients vertical = precompute(in.height, box.y0, box.y1, out_h, filter);
  // The source rows the vertical pass reads: the horizontal pass skips the rest.
  const int first_row = vertical.first.front();
  const int last_row = vertical.first.back() + vertical.count.back();
  if (!need_horizontal) return need_vertical ? resample_vertical(in, vertical) : in;
  const Coefficients horizontal = precompute(in.width, box.x0, box.x1, out_w, filter);
  for (int& row : vertical.first) row -= first_row;  // now indexes the band below
  const Image band = resample_horizontal(in, first_row, last_row - first_row, horizontal);
  return need_vertical ? resample_vertical(band, vertical) : band;
}

// Pillow's ImagingScaleAffine() with the NEAREST filter, as Image.resize()
// reaches it: positions accumulate by repeated addition of the step.
Image resample_nearest(const Image& in, int out_w, int out_h, const Box& box) {
  const double step_x = static_cast<double>(box.x1 - box.x0) / out_w;
  const double step_y = static_cast<double>(box.y1 - box.y0) / out_h;
  auto source_index = [](double position) { return position < 0.0 ? -1 : static_cast<int>(position); };
  std::vector<int> source_x(static_cast<std::size_t>(out_w));
  double xo = double(box.x0) + step_x * 0.5;
  for (int x = 0; x < out_w; ++x, xo += step_x) source_x[std::size_t(x)] = source_index(xo);
  Image out;
  out.width = out_w;
  out.height = out_h;
  out.rgb.assign(std::size_t(out_w) * out_h * kChannels, 0);  // PIL fills misses with 0
  double yo = double(box.y0) + step_y * 0.5;
  for (int y = 0; y < out_h; ++y, yo += step_y) {
    const int sy = source_index(yo);
    if (sy < 0 || sy >= in.height) continue;
    const std::uint8_t* line = &in.rgb[std::size_t(sy) * in.width * kChannels];
    std::uint8_t* dst = &out.rgb[std::size_t(y) * out_w * kChannels];
    for (int x = 0; x < out_w; ++x) {
      const int sx = source_x[std::size_t(x)];
      if (sx >= 0 && sx < in.width) std::memcpy(dst + x * kChannels, line + sx * kChannels, kChannels);
    }
  }
  return out;
}

}  // namespace

const char* resample_name(Resample filter) noexcept {
  switch (filter) {
    case Resample::Nearest: return "nearest";
    case Resample::Lanczos: return "lanczos";
    case Resample::Bilinear: return "bilinear";
    case Resample::Bicubic: return "bicubic";
    case Resample::Box: return "box";
    case Resample::Hamming: return "hamming";
  }
  return "unknown";
}

Resample resample_from_pil_code(int code) {
  if (code < 0 || code > 5) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("unknown PIL resampling filter {} (expected 0 NEAREST, 1 LANCZOS, "
                            "2 BILINEAR, 3 BICUBIC, 4 BOX or 5 HAMMING)",
                            code));
  }
  return static_cast<Resample>(code);
}

Image resize(const Image& image, int out_width, int out_height, Resample filter) {
  Box whole;
  whole.x1 = static_cast<float>(image.width);
  whole.y1 = static_cast<float>(image.height);
  return resize(image, out_width, out_height, filter, whole);
}

Image resize(const Image& image, int out_width, int out_height, Resample filter,
             const Box& box) {
  if (image.empty() || image.rgb.size() != std::size_t(image.width) * image.height * kChannels) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("resize: the image is empty or its pixel buffer does not match {}x{}",
                            image.width, image.height));
  }
  if (out_width < 1 || out_height < 1) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("resize: output size {}x{} must be at least 1x1", out_width, out_height));
  }
  if (!(box.x0 >= 0 && box.y0 >= 0 && box.x1 <= image.width && box.y1 <= image.height &&
        box.x1 >= box.x0 && box.y1 >= box.y0)) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("resize: source box ({}, {})-({}, {}) is not inside the {}x{} image",
                            box.x0, box.y0, box.x1, box.y1, image.width, image.height));
  }
  const bool whole_image = box.x0 == 0 && box.y0 == 0 && box.x1 == image.width &&
                           box.y1 == image.height;
  if (whole_image && out_width == image.width && out_height == image.height) return image;
  // An integral box already of the requested size is a plain crop in PIL.
  if (box.x0 == std::floor(box.x0) && box.y0 == std::floor(box.y0) &&
      box.x1 - box.x0 == out_width && box.y1 - box.y0 == out_height) {
    const int x0 = static_cast<int>(box.x0);
    const int y0 = static_cast<int>(box.y0);
    const std::size_t row_bytes = std::size_t(image.width) * kChannels;
    return Image::from_rgb(&image.rgb[std::size_t(y0) * row_bytes + std::size_t(x0) * kChannels],
                           out_width, out_height, row_bytes);
  }
  if (filter == Resample::Nearest) return resample_nearest(image, out_width, out_height, box);
  return resample_convolution(image, out_width, out_height, filter_for(filter), box);
}

}  // namespace imgjudge::image
