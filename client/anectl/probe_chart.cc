#include "client/anectl/probe_chart.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace anerd::anectl {
namespace {

bool IsThroughput(const v1::ProbeRow& r) {
  return r.tflops() > 0 && r.weight_mb() > 0 && r.probe() != "latency" && r.probe() != "qos";
}
bool IsLatency(const v1::ProbeRow& r) {
  return r.p50_us() > 0 && (r.probe() == "qos" ? r.has_qos() : r.weight_mb() > 0);
}
std::string GroupName(const v1::ProbeRow& r) {
  return r.variant().empty() ? r.probe() : absl::StrCat(r.probe(), " ", r.variant());
}

// One series per group; a group with two rows of one channel count becomes one series per
// channel count. Groups keep the order they first appear in; channel counts ascend.
std::vector<ChartSeries> Group(const std::vector<const v1::ProbeRow*>& rows,
                               double (*x)(const v1::ProbeRow&), double (*y)(const v1::ProbeRow&)) {
  std::vector<std::string> order;
  std::map<std::string, std::map<int64_t, std::vector<const v1::ProbeRow*>>> groups;
  for (const v1::ProbeRow* r : rows) {
    const std::string g = GroupName(*r);
    if (groups.find(g) == groups.end()) order.push_back(g);
    groups[g][r->channels()].push_back(r);
  }
  std::vector<ChartSeries> out;
  for (const std::string& g : order) {
    const auto& by_channels = groups[g];
    const bool split = std::any_of(by_channels.begin(), by_channels.end(),
                                   [](const auto& kv) { return kv.second.size() > 1; });
    if (!split) out.push_back({g, {}});
    for (const auto& [channels, members] : by_channels) {
      if (split) out.push_back({absl::StrCat(g, " ", channels, "ch"), {}});
      for (const v1::ProbeRow* r : members) out.back().points.emplace_back(x(*r), y(*r));
    }
  }
  for (ChartSeries& s : out) std::sort(s.points.begin(), s.points.end());
  return out;
}

}  // namespace

ChartSpec ProbeChart(const v1::ProbeResult& result) {
  ChartSpec spec;
  spec.title = absl::StrCat("anerd probe ", result.summary().probe(), " on ",
                            result.summary().fingerprint().backend(), " (",
                            result.summary().result_id(), ")");
  std::vector<const v1::ProbeRow*> throughput, latency;
  bool w8a8 = false, qos = false;
  for (const v1::ProbeRow& r : result.rows()) {
    if (IsThroughput(r)) {
      throughput.push_back(&r);
      w8a8 |= r.variant() == "w8a8";
    } else if (IsLatency(r)) {
      latency.push_back(&r);
      qos |= r.probe() == "qos";
    }
  }
  if (!throughput.empty() || latency.empty()) {
    spec.x_label = w8a8 ? "weight MB (fp16; w8a8 rows: int8 as stored)" : "weight MB (fp16)";
    spec.y_label = w8a8 ? "TFLOPS (w8a8 rows: TOPS)" : "TFLOPS";
    spec.series = Group(
        throughput, [](const v1::ProbeRow& r) { return r.weight_mb(); },
        [](const v1::ProbeRow& r) { return r.tflops(); });
    for (const v1::ProbeSpill& s : result.summary().spills()) {
      spec.markers.push_back({std::sqrt(s.x_before_mb() * s.x_after_mb()),
                              absl::StrFormat("spill %.2f-%.2f MB (-%.0f%%)", s.x_before_mb(),
                                              s.x_after_mb(), 100 * s.drop())});
    }
    return spec;
  }
  // Latency only: the qos sweep is plotted against the QoS value, the rest against weight MB.
  if (qos) {
    latency.erase(std::remove_if(latency.begin(), latency.end(),
                                 [](const v1::ProbeRow* r) { return r->probe() != "qos"; }),
                  latency.end());
  }
  spec.x_label = qos ? "QoS" : "weight MB (fp16)";
  spec.y_label = "p50 latency (\u00b5s)";
  spec.log_x = !qos;
  spec.series = Group(
      latency,
      qos ? +[](const v1::ProbeRow& r) { return static_cast<double>(r.qos()); }
          : +[](const v1::ProbeRow& r) { return r.weight_mb(); },
      [](const v1::ProbeRow& r) { return r.p50_us(); });
  return spec;
}

}  // namespace anerd::anectl
