// A small self-contained SVG line chart (no scripts, no external resources) for `anectl probe
// --svg`: one polyline per series with a circle per point, optional vertical markers (detected
// spill points), axes with ticks and a legend. The output is well-formed XML that browsers open.
// Thread-safety: pure function.
#ifndef ANERD_CLIENT_ANECTL_SVG_CHART_H_
#define ANERD_CLIENT_ANECTL_SVG_CHART_H_

#include <string>
#include <utility>
#include <vector>

namespace anerd::anectl {

struct ChartSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y)
};

struct ChartMarker {
  double x = 0;
  std::string label;
};

struct ChartSpec {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_x = true;  // log2 x axis (ignored unless every x is > 0)
  std::vector<ChartSeries> series;
  std::vector<ChartMarker> markers;
};

// Each series is a <g class="series" data-series="NAME"> holding a <polyline> and one <circle>
// per point with data-x / data-y attributes (the values, not pixels); each marker is a
// <g class="marker" data-x="X">. Text is XML-escaped.
std::string RenderSvgChart(const ChartSpec& spec);

}  // namespace anerd::anectl

#endif  // ANERD_CLIENT_ANECTL_SVG_CHART_H_
