#include "client/anectl/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace anerd::anectl {
namespace {

constexpr double kPlotWidth = 600, kPlotHeight = 390, kTop = 50, kMinWidth = 860, kMinHeight = 500;
constexpr double kTitleFont = 16, kLabelFont = 13, kTickFont = 11, kMarkerFont = 11,
                 kLegendFont = 12, kLegendRow = 18;
constexpr double kLabelGap = 8;  // least free space between two tick labels, px
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

struct Box {
  double x0, y0, x1, y1;
  bool Overlaps(const Box& o) const { return x0 < o.x1 && o.x0 < x1 && y0 < o.y1 && o.y0 < y1; }
};

// The box of a text drawn at (x, baseline) with text-anchor `anchor` (start, middle or end).
Box TextBox(double x, double baseline, const std::string& text, double font,
            const std::string& anchor) {
  const double w = TextWidth(text, font);
  const double x0 = anchor == "end" ? x - w : anchor == "middle" ? x - w / 2 : x;
  return {x0, baseline - font, x0 + w, baseline + 0.25 * font};
}

std::string Text(const char* cls, double x, double y, double font, const std::string& anchor,
                 const std::string& text, const std::string& extra = "") {
  return absl::StrFormat(
      "<text class=\"%s\" x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" text-anchor=\"%s\"%s>%s</text>",
      cls, x, y, font, anchor, extra, Escape(text));
}

// One axis: its round ticks, their labels, and the data range they span.
struct Axis {
  bool log = false;
  std::vector<double> ticks;
  std::vector<std::string> labels;
  double lo = 0, hi = 1;
  // Pixel position of `v` between p0 (at lo) and p1 (at hi).
  double Pos(double v, double p0, double p1) const {
    const double a = log ? std::log(v) : v, l = log ? std::log(lo) : lo;
    const double h = log ? std::log(hi) : hi;
    return p0 + (h > l ? (a - l) / (h - l) : 0.5) * (p1 - p0);
  }
};

std::vector<std::string> Labels(const std::vector<double>& ticks, bool log) {
  std::vector<std::string> out;
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : 1;
  const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  for (double t : ticks) {
    if (!log && std::abs(t) < step / 2) {
      out.push_back("0");  // not "0.000" nor "-0"
      continue;
    }
    out.push_back(log ? absl::StrFormat("%g", t) : absl::StrFormat("%.*f", decimals, t));
  }
  return out;
}

void SetTicks(Axis& axis, std::vector<double> ticks) {
  axis.lo = ticks.front();
  axis.hi = ticks.back();
  axis.labels = Labels(ticks, axis.log);
  axis.ticks = std::move(ticks);
}

// True when the x tick labels of `axis` over [p0, p1] leave kLabelGap between neighbours.
bool XLabelsFit(const Axis& axis, double p0, double p1) {
  for (size_t i = 1; i < axis.ticks.size(); ++i) {
    const double a = axis.Pos(axis.ticks[i - 1], p0, p1), b = axis.Pos(axis.ticks[i], p0, p1);
    const double need =
        (TextWidth(axis.labels[i - 1], kTickFont) + TextWidth(axis.labels[i], kTickFont)) / 2;
    if (b - a < need + kLabelGap) return false;
  }
  return true;
}

// The x axis: log ticks thinned (1-2-5, then powers of ten, then every n-th power) or linear
// ticks with fewer intervals, until the labels fit.
Axis MakeXAxis(const ChartSpec& spec, double p0, double p1) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const ChartSeries& s : spec.series) {
    for (const auto& [x, y] : s.points) lo = std::min(lo, x), hi = std::max(hi, x);
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  Axis axis;
  axis.log = spec.log_x && lo > 0;
  if (!axis.log) {
    for (int target = 6; target >= 1; --target) {
      SetTicks(axis, LinearTicks(std::min(lo, 0.0), hi, target));
      if (XLabelsFit(axis, p0, p1)) break;
    }
    return axis;
  }
  const std::vector<double> all = LogTicks(lo, hi);
  SetTicks(axis, all);
  std::vector<double> decades;
  for (double t : all) {
    if (std::abs(t / std::pow(10, std::floor(std::log10(t) + 1e-9)) - 1) < 1e-6) {
      decades.push_back(t);
    }
  }
  for (size_t stride = 1; !XLabelsFit(axis, p0, p1) && stride <= decades.size(); ++stride) {
    std::vector<double> kept;
    for (size_t i = 0; i < decades.size(); i += stride) kept.push_back(decades[i]);
    axis.ticks = kept;
    axis.labels = Labels(kept, true);  // the axis keeps spanning all of [lo, hi]
  }
  return axis;
}

Axis MakeYAxis(const ChartSpec& spec) {
  double lo = 0, hi = 0;
  for (const ChartSeries& s : spec.series) {
    for (const auto& [x, y] : s.points) lo = std::min(lo, y), hi = std::max(hi, y);
  }
  Axis axis;
  SetTicks(axis, LinearTicks(lo, hi > lo ? hi + (hi - lo) * 0.05 : lo + 1, 5));
  return axis;
}

struct Frame {
  double left, right, top, bottom, width, height;
};

std::string RenderAxes(const ChartSpec& spec, const Axis& xa, const Axis& ya, const Frame& f) {
  std::string out = absl::StrFormat(
      "<g class=\"axes\" stroke=\"#333\" fill=\"none\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
      "y2=\"%.1f\"/><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/></g>\n",
      f.left, f.bottom, f.right, f.bottom, f.left, f.top, f.left, f.bottom);
  for (size_t i = 0; i < xa.ticks.size(); ++i) {
    const double x = xa.Pos(xa.ticks[i], f.left, f.right);
    absl::StrAppendFormat(&out,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                          "stroke=\"#333\"/>",
                          x, f.bottom, x, f.bottom + 4);
    out += Text("xtick", x, f.bottom + 20, kTickFont, "middle", xa.labels[i],
                absl::StrFormat(" data-value=\"%.6g\"", xa.ticks[i]));
    out += "\n";
  }
  for (size_t i = 0; i < ya.ticks.size(); ++i) {
    const double y = ya.Pos(ya.ticks[i], f.bottom, f.top);
    absl::StrAppendFormat(&out,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                          "stroke=\"#eee\"/>",
                          f.left, y, f.right, y);
    out += Text("ytick", f.left - 6, y + 4, kTickFont, "end", ya.labels[i],
                absl::StrFormat(" data-value=\"%.6g\"", ya.ticks[i]));
    out += "\n";
  }
  const double mid_y = (f.top + f.bottom) / 2;
  out += Text("xlabel", (f.left + f.right) / 2, f.bottom + 42, kLabelFont, "middle", spec.x_label);
  out += "\n";
  out += Text("ylabel", 20, mid_y, kLabelFont, "middle", spec.y_label,
              absl::StrFormat(" transform=\"rotate(-90 20 %.1f)\"", mid_y));
  out += "\n";
  return out;
}

// Marker lines with their labels placed inside the plot area: right of the line, else left of
// it, in the first row (from the top) where the label overlaps no label placed before it.
std::string RenderMarkers(const ChartSpec& spec, const Axis& xa, const Frame& f) {
  std::string out;
  std::vector<Box> placed;
  for (const ChartMarker& m : spec.markers) {
    if (xa.log && m.x <= 0) continue;
    const double x = xa.Pos(m.x, f.left, f.right);
    double tx = x + 3, ty = f.top + 12;
    std::string anchor = "start";
    for (int row = 0; row < 100; ++row) {
      ty = f.top + 12 + row * (kMarkerFont + 4);
      bool found = false;
      for (const char* a : {"start", "end"}) {
        const double cx = std::string(a) == "start" ? x + 3 : x - 3;
        const Box b = TextBox(cx, ty, m.label, kMarkerFont, a);
        if (b.x0 < f.left || b.x1 > f.right) continue;
        if (std::any_of(placed.begin(), placed.end(),
                        [&](const Box& p) { return p.Overlaps(b); })) {
          continue;
        }
        tx = cx, anchor = a, found = true;
        placed.push_back(b);
        break;
      }
      if (found) break;
    }
    absl::StrAppendFormat(&out,
                          "<g class=\"marker\" data-x=\"%.6g\"><line x1=\"%.1f\" y1=\"%.1f\" "
                          "x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"5,4\"/>",
                          m.x, x, f.top, x, f.bottom);
    out += Text("marker-label", tx, ty, kMarkerFont, anchor, m.label, " fill=\"#555\"");
    out += "</g>\n";
  }
  return out;
}

std::string RenderSeries(const ChartSeries& series, const Axis& xa, const Axis& ya, const Frame& f,
                         const char* color, int index) {
  std::string points, circles;
  for (const auto& [x, y] : series.points) {
    if (xa.log && x <= 0) continue;
    const double px = xa.Pos(x, f.left, f.right), py = ya.Pos(y, f.bottom, f.top);
    absl::StrAppendFormat(&points, "%s%.1f,%.1f", points.empty() ? "" : " ", px, py);
    absl::StrAppendFormat(&circles,
                          "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" data-x=\"%.6g\" "
                          "data-y=\"%.6g\"><title>%s: %.6g, %.6g</title></circle>\n",
                          px, py, color, x, y, Escape(series.name), x, y);
  }
  std::string out = absl::StrFormat(
      "<g class=\"series\" data-series=\"%s\"><polyline fill=\"none\" stroke=\"%s\" "
      "stroke-width=\"2\" points=\"%s\"/>\n%s",
      Escape(series.name), color, points, circles);
  const double ly = f.top + kLegendRow * index;
  absl::StrAppendFormat(&out,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>",
                        f.right + 14, ly, color);
  out += Text("legend", f.right + 32, ly + 10, kLegendFont, "start", series.name);
  out += "</g>\n";
  return out;
}

}  // namespace

double TextWidth(const std::string& text, double font_size) {
  size_t chars = 0;
  for (unsigned char c : text) chars += (c & 0xC0) != 0x80;  // UTF-8 lead bytes
  return 0.62 * font_size * static_cast<double>(chars);
}

std::vector<double> LinearTicks(double lo, double hi, int target) {
  if (!(hi > lo)) hi = lo + (lo == 0 ? 1 : std::abs(lo));
  const double raw = (hi - lo) / std::max(1, target);
  const double p = std::pow(10, std::floor(std::log10(raw)));
  double step = 10 * p;
  for (double m : {1.0, 2.0, 5.0}) {
    if (m * p >= raw * (1 - 1e-9)) {
      step = m * p;
      break;
    }
  }
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9), last = std::ceil(hi / step - 1e-9);
  for (double i = first; i <= last + 0.5; ++i) ticks.push_back(i * step);
  return ticks;
}

std::vector<double> LogTicks(double lo, double hi) {
  std::vector<double> candidates;
  const int k0 = static_cast<int>(std::floor(std::log10(lo))) - 1;
  const int k1 = static_cast<int>(std::ceil(std::log10(hi))) + 1;
  for (int k = k0; k <= k1; ++k) {
    for (double m : {1.0, 2.0, 5.0}) candidates.push_back(m * std::pow(10, k));
  }
  size_t a = 0, b = candidates.size() - 1;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (candidates[i] <= lo * (1 + 1e-9)) a = i;
  }
  for (size_t i = candidates.size(); i-- > 0;) {
    if (candidates[i] >= hi * (1 - 1e-9)) b = i;
  }
  b = std::max(b, a + 1);
  return {candidates.begin() + a, candidates.begin() + b + 1};
}

std::string RenderSvgChart(const ChartSpec& spec) {
  const Axis ya = MakeYAxis(spec);
  double tick_w = 0, legend_w = 0;
  for (const std::string& l : ya.labels) tick_w = std::max(tick_w, TextWidth(l, kTickFont));
  for (const ChartSeries& s : spec.series) {
    legend_w = std::max(legend_w, TextWidth(s.name, kLegendFont));
  }
  Frame f;
  f.left = std::max(80.0, 20 + kLabelFont + 10 + tick_w + 6);
  f.right = f.left + kPlotWidth;
  f.top = kTop;
  f.bottom = kTop + kPlotHeight;
  f.width = std::max(kMinWidth, f.right + 32 + legend_w + 12);
  f.height = std::max(kMinHeight, kTop + kLegendRow * spec.series.size() + 20);
  const Axis xa = MakeXAxis(spec, f.left, f.right);
  std::string out = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
      "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<title>%s</title>\n",
      f.width, f.height, f.width, f.height, Escape(spec.title));
  out += Text("title", f.width / 2, 28, kTitleFont, "middle", spec.title);
  out += "\n";
  out += RenderAxes(spec, xa, ya, f);
  out += RenderMarkers(spec, xa, f);
  for (size_t i = 0; i < spec.series.size(); ++i) {
    out +=
        RenderSeries(spec.series[i], xa, ya, f,
                     kPalette[i % (sizeof(kPalette) / sizeof(kPalette[0]))], static_cast<int>(i));
  }
  out += "</svg>\n";
  return out;
}

}  // namespace anerd::anectl
