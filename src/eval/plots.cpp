#include "eval/plots.hpp"

#include <plplot.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "util/files.hpp"

namespace imgjudge::eval {
namespace {

// PLplot's API works on a global current stream: one plot at a time.
std::mutex plplot_mutex;
std::string plplot_abort_message;  // Guarded by plplot_mutex.

constexpr int kWidth = 800, kHeight = 500;

// Colour-map-0 slots used below (slot 0 is the background).
enum Colour : PLINT { kBlack = 1, kBlueFill = 2, kBlue = 3, kOrangeFill = 4, kOrange = 5, kGrey = 6 };

bool has_pngcairo() {
  // PLplot fills at most `count` entries of caller-provided arrays (passed by address).
  int count = 128;
  std::vector<PLCHAR_VECTOR> menu(count), names(count);
  PLCHAR_VECTOR* menu_array = menu.data();
  PLCHAR_VECTOR* name_array = names.data();
  plgDevs(&menu_array, &name_array, &count);
  return std::any_of(names.begin(), names.begin() + count,
                     [](PLCHAR_VECTOR name) { return name && std::string(name) == "pngcairo"; });
}

// Opens a fresh PLplot stream that renders to `png_path`; closes it (writing the file) on
// destruction. plabort() messages (bad arguments) are collected instead of printed.
class PngPlot {
 public:
  explicit PngPlot(const std::string& png_path) : lock_(plplot_mutex), path_(png_path) {
    // PLplot ends the process on a file it cannot open (plexit), so check that first.
    if (!std::ofstream(png_path, std::ios::binary | std::ios::trunc)) {
      throw Error(ErrorCode::Io, fmt::format("{}: cannot write the plot: {}", png_path, std::strerror(errno)));
    }
    if (!has_pngcairo()) {
      throw Error(ErrorCode::Unsupported, "PLplot's pngcairo driver is not installed (Debian: plplot-driver-cairo)");
    }
    plplot_abort_message.clear();
    plsabort([](PLCHAR_VECTOR message) {
      if (plplot_abort_message.empty()) plplot_abort_message = message;  // The first is the cause.
    });
    PLINT stream = 0;
    plmkstrm(&stream);
    plsdev("pngcairo");
    plsfnam(png_path.c_str());
    plsetopt("geometry", fmt::format("{}x{}", kWidth, kHeight).c_str());
    plscolbg(255, 255, 255);
    plinit();
    plscol0a(kBlack, 0, 0, 0, 1.0);
    plscol0a(kBlueFill, 31, 119, 180, 0.35);
    plscol0a(kBlue, 31, 119, 180, 1.0);
    plscol0a(kOrangeFill, 255, 127, 14, 0.35);
    plscol0a(kOrange, 230, 100, 0, 1.0);
    plscol0a(kGrey, 150, 150, 150, 1.0);
    plcol0(kBlack);
  }
  // Finishes the page and writes the file. Call once; throws if PLplot complained.
  void finish() {
    plend1();
    finished_ = true;
    plsabort(nullptr);
    if (!plplot_abort_message.empty()) {
      throw Error(ErrorCode::Internal, fmt::format("{}: PLplot: {}", path_, plplot_abort_message));
    }
    if (!util::file_exists(path_)) throw Error(ErrorCode::Io, fmt::format("{}: PLplot did not write the plot", path_));
  }
  ~PngPlot() {
    if (!finished_) {
      plend1();
      plsabort(nullptr);
    }
  }
  PngPlot(const PngPlot&) = delete;
  PngPlot& operator=(const PngPlot&) = delete;

 private:
  std::lock_guard<std::mutex> lock_;
  std::string path_;
  bool finished_ = false;
};

// Share of `values` per bin of [0, 1]; 1.0 falls into the last bin.
std::vector<PLFLT> bin_shares(const std::vector<double>& values, int bins) {
  std::vector<PLFLT> shares(bins, 0.0);
  for (double v : values) shares[std::min(bins - 1, static_cast<int>(v * bins))] += 1.0 / values.size();
  return shares;
}

void draw_bars(const std::vector<PLFLT>& shares, Colour fill, Colour outline) {
  const int bins = static_cast<int>(shares.size());
  for (int b = 0; b < bins; ++b) {
    if (shares[b] <= 0) continue;
    const PLFLT x0 = PLFLT(b) / bins, x1 = PLFLT(b + 1) / bins;
    PLFLT xs[4] = {x0, x0, x1, x1}, ys[4] = {0, shares[b], shares[b], 0};
    plcol0(fill);
    plfill(4, xs, ys);
    plcol0(outline);
    plline(4, xs, ys);
  }
}

// Axes on [0, x_max] x [0, y_max] in a viewport that leaves the right quarter of the page
// for the legend, so it never hides data. Grid lines in grey under the black frame.
void draw_frame(PLFLT x_max, PLFLT y_max, const std::string& x_label, const std::string& y_label,
                const std::string& title) {
  pladv(0);
  plvpor(0.09, 0.70, 0.12, 0.90);
  plwind(0, x_max, 0, y_max);
  plcol0(kGrey);
  plwidth(0.5);
  plbox("g", 0, 0, "g", 0, 0);
  plwidth(1);
  plcol0(kBlack);
  plbox("bcnst", 0, 0, "bcnstv", 0, 0);
  pllab(x_label.c_str(), y_label.c_str(), title.c_str());
}

// Right of the viewport, vertically centred.
constexpr PLINT kLegendPosition = PL_POSITION_RIGHT | PL_POSITION_OUTSIDE | PL_POSITION_VIEWPORT;

void legend(const std::vector<std::string>& texts, const std::vector<PLINT>& options, const std::vector<PLINT>& colours,
            const std::vector<PLINT>& box_colours, PLINT position) {
  const PLINT n = static_cast<PLINT>(texts.size());
  std::vector<PLCHAR_VECTOR> text(n), symbols(n, "#(728)");  // Hershey star, as plot_relevance_curve draws.
  for (PLINT i = 0; i < n; ++i) text[i] = texts[i].c_str();
  std::vector<PLINT> black(n, kBlack), patterns(n, 0), styles(n, 1), symbol_numbers(n, 1);
  std::vector<PLFLT> box_scales(n, 0.8), box_widths(n, 1.0), line_widths(n, 2.0), symbol_scales(n, 1.2);
  PLFLT width = 0, height = 0;
  pllegend(&width, &height, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, position, 0.03, 0.0, 0.08, 0, kBlack, 1,
           0, 0, n, options.data(), 1.0, 0.8, 2.0, 0.0, black.data(), text.data(), box_colours.data(), patterns.data(),
           box_scales.data(), box_widths.data(), colours.data(), styles.data(), line_widths.data(), colours.data(),
           symbol_scales.data(), symbol_numbers.data(), symbols.data());
}

}  // namespace

void plot_score_histograms(const std::string& png_path, const std::string& title, const std::string& x_label,
                           const std::vector<double>& satisfied, const std::vector<double>& not_satisfied, int bins) {
  if (bins < 1 || bins > 1000) throw Error(ErrorCode::InvalidArgument, fmt::format("{} histogram bins", bins));
  for (const auto* values : {&satisfied, &not_satisfied}) {
    for (double v : *values) {
      if (!(v >= 0 && v <= 1)) {
        throw Error(ErrorCode::InvalidArgument, fmt::format("{}: score {} is outside [0, 1]", png_path, v));
      }
    }
  }
  const auto shares_satisfied = bin_shares(satisfied, bins), shares_not = bin_shares(not_satisfied, bins);
  PLFLT top = 0;
  for (const auto* shares : {&shares_satisfied, &shares_not}) {
    for (PLFLT s : *shares) top = std::max(top, s);
  }
  top = top > 0 ? std::min(1.0, top * 1.05) : 1.0;

  PngPlot plot(png_path);
  draw_frame(1, top, x_label, "share of items", title);
  draw_bars(shares_not, kOrangeFill, kOrange);
  draw_bars(shares_satisfied, kBlueFill, kBlue);
  plcol0(kBlack);
  legend({fmt::format("satisfied (n={})", satisfied.size()), fmt::format("not satisfied (n={})", not_satisfied.size())},
         {PL_LEGEND_COLOR_BOX, PL_LEGEND_COLOR_BOX}, {kBlue, kOrange}, {kBlueFill, kOrangeFill}, kLegendPosition);
  plot.finish();
}

void plot_relevance_curve(const std::string& png_path, const RelevanceCurve& curve) {
  if (curve.points.empty()) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("{}: no labelled violations with a relevance value", png_path));
  }
  std::vector<PLFLT> recall, precision;
  for (const auto& p : curve.points) {
    recall.push_back(p.recall);
    precision.push_back(p.precision);
  }
  PngPlot plot(png_path);
  // A little room past 1 so points at recall or precision 1 do not sit on the frame.
  draw_frame(1.04, 1.04, "recall", "precision", "Relevance scanning, threshold swept");
  plcol0(kBlue);
  plwidth(2);
  plline(static_cast<PLINT>(recall.size()), recall.data(), precision.data());
  plwidth(1);
  plpoin(static_cast<PLINT>(recall.size()), recall.data(), precision.data(), 17);  // 17: filled dot.
  // Label the two ends with their thresholds; the marker shows the configured ones.
  plcol0(kBlack);
  plschr(0, 0.7);
  for (const PrPoint* p : {&curve.points.front(), &curve.points.back()}) {
    plptex(p->recall, p->precision, 1, 0, p->recall > 0.8 ? 1.0 : 0.0, fmt::format("  t={:.3f}  ", p->threshold).c_str());
  }
  plschr(0, 1.0);
  std::vector<std::string> texts{"threshold swept"};
  std::vector<PLINT> options{PL_LEGEND_LINE}, colours{kBlue}, boxes{kBlue};
  if (std::isfinite(curve.precision_at_threshold) && std::isfinite(curve.recall_at_threshold)) {
    PLFLT x = curve.recall_at_threshold, y = curve.precision_at_threshold;
    plcol0(kOrange);
    plschr(0, 1.6);
    plstring(1, &x, &y, "#(728)");  // Hershey star.
    plschr(0, 1.0);
    texts.push_back("as configured");
    options.push_back(PL_LEGEND_SYMBOL);
    colours.push_back(kOrange);
    boxes.push_back(kOrange);
  }
  plcol0(kBlack);
  legend(texts, options, colours, boxes, kLegendPosition);
  plot.finish();
}

}  // namespace imgjudge::eval
