// The chart `anectl probe --svg` and `probe show --svg` write for a probe result.
//
// Throughput rows (peak, sram, int8) are plotted as TFLOPS (w8a8 rows: TOPS) against weight MB
// on a log axis, one series per probe and variant; when a series would hold several rows of the
// same channel count (a grid over depths), it is split into one series per channel count
// ("peak 512ch"), so no line zigzags between channel counts. Detected spill points are markers.
// A result with no throughput rows (latency, qos) is plotted as p50 latency in microseconds
// against weight MB (latency) or the QoS value (qos). Axis labels name only what is plotted.
// Thread-safety: pure function.
#ifndef ANERD_CLIENT_ANECTL_PROBE_CHART_H_
#define ANERD_CLIENT_ANECTL_PROBE_CHART_H_

#include "anerd/v1/anerd.pb.h"
#include "client/anectl/svg_chart.h"

namespace anerd::anectl {

ChartSpec ProbeChart(const v1::ProbeResult& result);

}  // namespace anerd::anectl

#endif  // ANERD_CLIENT_ANECTL_PROBE_CHART_H_
