// The probe charts' layout, read back from the SVG text as a viewer would: tick labels are round
// (1-2-5) numbers, no two text boxes overlap (legend, spill labels, ticks, titles), every text
// stays inside the image, and a grid over depths plots one series per channel count.
#include "client/anectl/svg_chart.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/anectl/probe_chart.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd::anectl {
namespace {

struct TextItem {
  std::string cls, text;
  double x0, y0, x1, y1, value;
};

std::string Unescape(std::string s) {
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}}) {
    for (size_t at; (at = s.find(from)) != std::string::npos;) s.replace(at, from.size(), to);
  }
  return s;
}

// Every <text> with its box: TextWidth wide, one font size tall (plus descenders), placed by its
// anchor; the rotated axis label is a vertical box.
std::vector<TextItem> Texts(const std::string& svg) {
  static const std::regex kText(
      R"re(<text class="([\w-]+)" x="([-\d.]+)" y="([-\d.]+)" font-size="([\d.]+)" )re"
      R"re(text-anchor="(\w+)"([^>]*)>([^<]*)</text>)re");
  static const std::regex kValue(R"re(data-value="([^"]+)")re");
  std::vector<TextItem> out;
  for (std::sregex_iterator it(svg.begin(), svg.end(), kText), end; it != end; ++it) {
    const std::smatch& m = *it;
    TextItem t;
    t.cls = m[1];
    t.text = Unescape(m[7]);
    const double x = std::stod(m[2]), y = std::stod(m[3]), font = std::stod(m[4]);
    const std::string anchor = m[5], extra = m[6];
    const double w = TextWidth(t.text, font);
    const double x0 = anchor == "end" ? x - w : anchor == "middle" ? x - w / 2 : x;
    if (extra.find("rotate(-90") != std::string::npos) {
      t.x0 = x - font, t.x1 = x + 0.25 * font, t.y0 = y - (x0 - x) - w, t.y1 = y - (x0 - x);
    } else {
      t.x0 = x0, t.x1 = x0 + w, t.y0 = y - font, t.y1 = y + 0.25 * font;
    }
    std::smatch v;
    t.value = std::regex_search(extra, v, kValue) ? std::stod(v[1]) : NAN;
    out.push_back(t);
  }
  return out;
}

// With ANERD_SVG_DUMP_DIR set, every checked chart is also written there (to render and look at:
// rsvg-convert FILE.svg -o FILE.png).
void Dump(const std::string& svg) {
  static int n = 0;
  if (const char* dir = std::getenv("ANERD_SVG_DUMP_DIR")) {
    std::ofstream(absl::StrCat(dir, "/chart", n++, ".svg")) << svg;
  }
}

void ExpectNoOverlapsInside(const std::string& svg) {
  Dump(svg);
  std::smatch size;
  ASSERT_TRUE(std::regex_search(svg, size, std::regex(R"re(width="(\d+)" height="(\d+)")re")));
  const double width = std::stod(size[1]), height = std::stod(size[2]);
  const std::vector<TextItem> texts = Texts(svg);
  ASSERT_GT(texts.size(), 5u);
  for (size_t i = 0; i < texts.size(); ++i) {
    const TextItem& a = texts[i];
    EXPECT_GE(a.x0, 0) << a.cls << " '" << a.text << "' leaves the image";
    EXPECT_LE(a.x1, width) << a.cls << " '" << a.text << "' leaves the image";
    EXPECT_GE(a.y0, 0) << a.cls << " '" << a.text << "' leaves the image";
    EXPECT_LE(a.y1, height) << a.cls << " '" << a.text << "' leaves the image";
    for (size_t j = i + 1; j < texts.size(); ++j) {
      const TextItem& b = texts[j];
      const bool overlap = a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
      EXPECT_FALSE(overlap) << a.cls << " '" << a.text << "' overlaps " << b.cls << " '" << b.text
                            << "'";
    }
  }
}

// 1, 2 or 5 times a power of ten.
bool IsRound(double v) {
  if (v == 0) return true;
  const double m = std::abs(v) / std::pow(10, std::floor(std::log10(std::abs(v)) + 1e-9));
  return std::abs(m - 1) < 1e-6 || std::abs(m - 2) < 1e-6 || std::abs(m - 5) < 1e-6;
}

// Linear ticks: a round step, every tick a multiple of it. Log ticks: each one round.
void ExpectRoundTicks(const std::string& svg, const std::string& cls, bool log) {
  std::vector<double> v;
  for (const TextItem& t : Texts(svg)) {
    if (t.cls == cls) v.push_back(t.value);
  }
  ASSERT_GE(v.size(), 2u) << cls;
  for (size_t i = 0; i < v.size(); ++i) {
    if (log) {
      EXPECT_TRUE(IsRound(v[i])) << cls << " " << v[i];
      continue;
    }
    const double step = v[1] - v[0];
    EXPECT_TRUE(IsRound(step)) << cls << " step " << step;
    EXPECT_NEAR(v[i] / step, std::round(v[i] / step), 1e-6) << cls << " " << v[i];
    if (i > 0) EXPECT_NEAR(v[i] - v[i - 1], step, step * 1e-6) << cls;
  }
}

std::set<std::string> SeriesNames(const std::string& svg) {
  std::set<std::string> names;
  static const std::regex kSeries(R"re(class="series" data-series="([^"]+)")re");
  for (std::sregex_iterator it(svg.begin(), svg.end(), kSeries), end; it != end; ++it) {
    names.insert((*it)[1]);
  }
  return names;
}

v1::ProbeRow Row(const std::string& probe, const std::string& variant, int64_t ch, int depth,
                 double tflops) {
  v1::ProbeRow r;
  r.set_probe(probe);
  r.set_variant(variant);
  r.set_channels(ch);
  r.set_depth(depth);
  r.set_weight_mb(2.0 * ch * ch * depth / (1 << 20));
  r.set_tflops(tflops);
  return r;
}

// The default peak grid (channels 512, 256, 384 over several depths, in that order).
v1::ProbeResult PeakResult() {
  v1::ProbeResult r;
  r.mutable_summary()->set_probe("peak");
  r.mutable_summary()->set_result_id("20261207-101500-a3f9");
  r.mutable_summary()->mutable_fingerprint()->set_backend("ane");
  const int grid[][2] = {{512, 32}, {512, 48},  {512, 64},  {512, 96}, {512, 128},
                         {256, 64}, {256, 128}, {256, 256}, {384, 64}, {384, 128}};
  double t = 7.1;
  for (const auto& [ch, depth] : grid) *r.add_rows() = Row("peak", "", ch, depth, t += 0.37);
  return r;
}

TEST(ProbeChartTest, ADepthGridPlotsOneSeriesPerChannelCount) {
  const ChartSpec spec = ProbeChart(PeakResult());
  ASSERT_EQ(spec.series.size(), 3u);
  EXPECT_EQ(SeriesNames(RenderSvgChart(spec)),
            (std::set<std::string>{"peak 256ch", "peak 384ch", "peak 512ch"}));
  for (const ChartSeries& s : spec.series) {
    for (size_t i = 1; i < s.points.size(); ++i)
      EXPECT_LT(s.points[i - 1].first, s.points[i].first);
  }
  EXPECT_EQ(spec.x_label, "weight MB (fp16)");  // no int8 rows: no int8 wording
  EXPECT_EQ(spec.y_label, "TFLOPS");
}

TEST(ProbeChartTest, AChannelSweepIsOneSeriesWithItsSpills) {
  v1::ProbeResult r;
  r.mutable_summary()->set_probe("sram");
  for (int64_t ch : {256, 512, 1024, 2048, 4096, 6144}) {
    *r.add_rows() = Row("sram", "", ch, 1, ch < 3000 ? 9.5 : 4.2);
  }
  v1::ProbeSpill* s = r.mutable_summary()->add_spills();
  s->set_x_before_mb(8), s->set_x_after_mb(32), s->set_drop(0.55);
  const ChartSpec spec = ProbeChart(r);
  ASSERT_EQ(spec.series.size(), 1u);
  EXPECT_EQ(spec.series[0].name, "sram");
  ASSERT_EQ(spec.markers.size(), 1u);
  const std::string svg = RenderSvgChart(spec);
  ExpectRoundTicks(svg, "xtick", /*log=*/true);
  ExpectRoundTicks(svg, "ytick", /*log=*/false);
  ExpectNoOverlapsInside(svg);
}

TEST(ProbeChartTest, AxisLabelsNameOnlyTheRowsPresent) {
  v1::ProbeResult int8;
  *int8.add_rows() = Row("int8", "fp16", 512, 128, 9);
  *int8.add_rows() = Row("int8", "w8a8", 512, 128, 15);
  EXPECT_THAT(ProbeChart(int8).y_label, ::testing::HasSubstr("TOPS"));
  EXPECT_THAT(ProbeChart(int8).x_label, ::testing::HasSubstr("w8a8"));

  v1::ProbeResult latency;
  v1::ProbeRow l = Row("latency", "in-process", 64, 1, 0);
  l.set_p50_us(80);
  *latency.add_rows() = l;
  const ChartSpec spec = ProbeChart(latency);
  EXPECT_EQ(spec.y_label, "p50 latency (\u00b5s)");
  ASSERT_EQ(spec.series.size(), 1u);
  EXPECT_THAT(spec.x_label, ::testing::Not(::testing::HasSubstr("int8")));
}

// Everything at once: many series with long names, spill labels close together and at the right
// edge (where the legend begins), tiny and huge values.
TEST(SvgChartTest, LegendSpillLabelsAndTicksNeverOverlap) {
  ChartSpec spec = ProbeChart(PeakResult());
  for (int i = 0; i < 9; ++i) {
    spec.series.push_back({absl::StrCat("int8 w8a8 ", 128 * (i + 1), "ch (a long name)"),
                           {{0.3 * (i + 1), 0.00123 * i}, {70.0 * (i + 1), 0.0456 * i}}});
  }
  for (double x : {0.5, 0.55, 0.6, 60.0, 61.0, 630.0, 640.0}) {
    spec.markers.push_back({x, absl::StrCat("spill ", x, "-", 2 * x, " MB (-37%)")});
  }
  const std::string svg = RenderSvgChart(spec);
  ExpectNoOverlapsInside(svg);
  ExpectRoundTicks(svg, "xtick", /*log=*/true);
  ExpectRoundTicks(svg, "ytick", /*log=*/false);
  EXPECT_EQ(SeriesNames(svg).size(), 12u);
}

TEST(SvgChartTest, WideAndNarrowRangesGetRoundTicks) {
  for (const auto& [lo, hi] : std::vector<std::pair<double, double>>{
           {1e-4, 1e7}, {16, 24}, {0.125, 128}, {3, 3}, {0.0007, 0.0009}}) {
    ChartSpec spec;
    spec.series.push_back({"s", {{lo, hi}, {hi, lo + hi}}});
    const std::string svg = RenderSvgChart(spec);
    ExpectRoundTicks(svg, "xtick", true);
    ExpectRoundTicks(svg, "ytick", false);
    ExpectNoOverlapsInside(svg);
    spec.log_x = false;
    const std::string linear = RenderSvgChart(spec);
    ExpectRoundTicks(linear, "xtick", false);
    ExpectNoOverlapsInside(linear);
  }
}

TEST(SvgChartTest, TicksAreRoundStepsCoveringTheRange) {
  EXPECT_EQ(LinearTicks(0, 9.3, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(LogTicks(0.125, 128),
            (std::vector<double>{0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200}));
  EXPECT_EQ(LogTicks(20, 20), (std::vector<double>{20, 50}));
}

}  // namespace
}  // namespace anerd::anectl
