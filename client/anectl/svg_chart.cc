#include "client/anectl/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace anerd::anectl {
namespace {

constexpr double kWidth = 860, kHeight = 500;
constexpr double kLeft = 80, kRight = 180, kTop = 50, kBottom = 60;
constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                    "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Maps data coordinates to pixels.
struct Scale {
  double x_min = 0, x_max = 1, y_max = 1;
  bool log_x = false;
  double X(double x) const {
    const double a = log_x ? std::log2(x) : x, lo = log_x ? std::log2(x_min) : x_min;
    const double hi = log_x ? std::log2(x_max) : x_max;
    const double t = hi > lo ? (a - lo) / (hi - lo) : 0.5;
    return kLeft + t * (kWidth - kLeft - kRight);
  }
  double Y(double y) const { return kHeight - kBottom - y / y_max * (kHeight - kTop - kBottom); }
};

Scale MakeScale(const ChartSpec& spec) {
  Scale s;
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_hi = 0;
  for (const ChartSeries& series : spec.series) {
    for (const auto& [x, y] : series.points) {
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_hi = std::max(y_hi, y);
    }
  }
  if (!std::isfinite(x_lo)) x_lo = 0, x_hi = 1;
  s.log_x = spec.log_x && x_lo > 0;
  if (s.log_x) {
    s.x_min = std::exp2(std::floor(std::log2(x_lo)));
    s.x_max = std::exp2(std::ceil(std::log2(x_hi)));
    if (s.x_max <= s.x_min) s.x_max = s.x_min * 2;
  } else {
    s.x_min = std::min(0.0, x_lo);
    s.x_max = x_hi > s.x_min ? x_hi : s.x_min + 1;
  }
  s.y_max = y_hi > 0 ? y_hi * 1.1 : 1;
  return s;
}

std::string Axes(const ChartSpec& spec, const Scale& s) {
  std::string out = absl::StrFormat(
      "<g class=\"axes\" stroke=\"#333\" fill=\"none\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
      "y2=\"%.1f\"/><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/></g>\n",
      kLeft, kHeight - kBottom, kWidth - kRight, kHeight - kBottom, kLeft, kTop, kLeft,
      kHeight - kBottom);
  std::vector<double> xticks;
  if (s.log_x) {
    for (double x = s.x_min; x <= s.x_max * 1.0001; x *= 2) xticks.push_back(x);
  } else {
    for (int i = 0; i <= 5; ++i) xticks.push_back(s.x_min + (s.x_max - s.x_min) * i / 5);
  }
  for (double x : xticks) {
    absl::StrAppendFormat(&out,
                          "<text class=\"xtick\" x=\"%.1f\" y=\"%.1f\" font-size=\"11\" "
                          "text-anchor=\"middle\">%g</text>\n",
                          s.X(x), kHeight - kBottom + 16, x);
  }
  for (int i = 0; i <= 5; ++i) {
    const double y = s.y_max * i / 5;
    absl::StrAppendFormat(&out,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                          "<text class=\"ytick\" x=\"%.1f\" y=\"%.1f\" font-size=\"11\" "
                          "text-anchor=\"end\">%.3g</text>\n",
                          kLeft, s.Y(y), kWidth - kRight, s.Y(y), kLeft - 6, s.Y(y) + 4, y);
  }
  absl::StrAppendFormat(
      &out,
      "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\">%s"
      "</text>\n<text x=\"20\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\" "
      "transform=\"rotate(-90 20 %.1f)\">%s</text>\n",
      (kLeft + kWidth - kRight) / 2, kHeight - 18, Escape(spec.x_label),
      (kTop + kHeight - kBottom) / 2, (kTop + kHeight - kBottom) / 2, Escape(spec.y_label));
  return out;
}

std::string Series(const ChartSeries& series, const Scale& s, const char* color, int index) {
  std::string points;
  for (const auto& [x, y] : series.points) {
    if (s.log_x && x <= 0) continue;
    absl::StrAppendFormat(&points, "%s%.1f,%.1f", points.empty() ? "" : " ", s.X(x), s.Y(y));
  }
  std::string out = absl::StrFormat(
      "<g class=\"series\" data-series=\"%s\"><polyline fill=\"none\" stroke=\"%s\" "
      "stroke-width=\"2\" points=\"%s\"/>\n",
      Escape(series.name), color, points);
  for (const auto& [x, y] : series.points) {
    if (s.log_x && x <= 0) continue;
    absl::StrAppendFormat(&out,
                          "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" data-x=\"%.6g\" "
                          "data-y=\"%.6g\"><title>%s: %.6g, %.6g</title></circle>\n",
                          s.X(x), s.Y(y), color, x, y, Escape(series.name), x, y);
  }
  const double ly = kTop + 18.0 * index;
  absl::StrAppendFormat(&out,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">%s</text></g>\n",
                        kWidth - kRight + 14, ly, color, kWidth - kRight + 32, ly + 10,
                        Escape(series.name));
  return out;
}

}  // namespace

std::string RenderSvgChart(const ChartSpec& spec) {
  const Scale s = MakeScale(spec);
  std::string out = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
      "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<title>%s</title>\n"
      "<text x=\"%.1f\" y=\"28\" font-size=\"16\" text-anchor=\"middle\">%s</text>\n",
      kWidth, kHeight, kWidth, kHeight, Escape(spec.title), kWidth / 2, Escape(spec.title));
  out += Axes(spec, s);
  for (const ChartMarker& m : spec.markers) {
    if (s.log_x && m.x <= 0) continue;
    absl::StrAppendFormat(
        &out,
        "<g class=\"marker\" data-x=\"%.6g\"><line x1=\"%.1f\" y1=\"%.1f\" "
        "x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"5,4\"/>"
        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\">%s</text></g>\n",
        m.x, s.X(m.x), kTop, s.X(m.x), kHeight - kBottom, s.X(m.x) + 3, kTop + 10, Escape(m.label));
  }
  for (size_t i = 0; i < spec.series.size(); ++i) {
    out += Series(spec.series[i], s, kPalette[i % (sizeof(kPalette) / sizeof(kPalette[0]))],
                  static_cast<int>(i));
  }
  out += "</svg>\n";
  return out;
}

}  // namespace anerd::anectl
