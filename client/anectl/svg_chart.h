// A small self-contained SVG line chart (no scripts, no external resources) for `anectl probe
// --svg`: one polyline per series with a circle per point, optional vertical markers (detected
// spill points), axes with round ticks and a legend. The output is well-formed XML that browsers
// and rsvg-convert open.
//
// Layout: ticks are round numbers (linear axes: multiples of a 1, 2 or 5 x 10^k step; log axes:
// 1, 2 and 5 x 10^k, thinned to 1 x 10^k when the labels would not fit). The legend sits right of
// the plot area, which is widened to fit the longest series name; marker labels stay inside the
// plot area and are moved left of their line or down a row so that no two text boxes overlap. Text
// boxes are estimated with TextWidth (no font metrics available): every <text> carries class,
// x, y, font-size and text-anchor so that a reader can compute the same boxes.
// Thread-safety: pure functions.
#ifndef ANERD_CLIENT_ANECTL_SVG_CHART_H_
#define ANERD_CLIENT_ANECTL_SVG_CHART_H_

#include <string>
#include <utility>
#include <vector>

namespace anerd::anectl {

struct ChartSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y); drawn in the order given
};

struct ChartMarker {
  double x = 0;
  std::string label;
};

struct ChartSpec {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_x = true;  // log x axis (ignored unless every x is > 0)
  std::vector<ChartSeries> series;
  std::vector<ChartMarker> markers;
};

// Each series is a <g class="series" data-series="NAME"> holding a <polyline> and one <circle>
// per point with data-x / data-y attributes (the values, not pixels); each marker is a
// <g class="marker" data-x="X">. Tick labels are <text class="xtick|ytick" data-value="V">.
// Text is XML-escaped.
std::string RenderSvgChart(const ChartSpec& spec);

// The estimated width in pixels of `text` (UTF-8) at `font_size` px in a sans-serif font: a
// generous 0.62 em per character, so real glyphs fit inside the estimate.
double TextWidth(const std::string& text, double font_size);

// Round ticks covering [lo, hi] with about `target` intervals: multiples of the smallest step
// m x 10^k (m in 1, 2, 5) that gives at most `target` intervals, from the multiple at or below lo
// to the one at or above hi. Requires lo <= hi, target >= 1.
std::vector<double> LinearTicks(double lo, double hi, int target);

// For a log axis over [lo, hi] (0 < lo <= hi): every m x 10^k (m in 1, 2, 5) from the largest one
// <= lo to the smallest one >= hi (at least two values).
std::vector<double> LogTicks(double lo, double hi);

}  // namespace anerd::anectl

#endif  // ANERD_CLIENT_ANECTL_SVG_CHART_H_
