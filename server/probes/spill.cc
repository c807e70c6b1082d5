// The spill-point detector: where a throughput-vs-size curve falls off a plateau.
#include <algorithm>
#include <vector>

#include "server/probes/probe.h"

namespace anerd::probes {

std::vector<SpillPoint> DetectSpills(std::vector<CurvePoint> curve, double min_drop) {
  std::stable_sort(curve.begin(), curve.end(),
                   [](const CurvePoint& a, const CurvePoint& b) { return a.x < b.x; });
  std::vector<SpillPoint> spills;
  if (curve.empty()) return spills;
  double best = curve[0].y;  // best throughput since the last spill
  for (size_t i = 1; i < curve.size(); ++i) {
    const double threshold = best * (1.0 - min_drop);
    const bool low = curve[i].y < threshold;
    const bool confirmed = i + 1 == curve.size() || curve[i + 1].y < threshold;
    if (low && confirmed && best > 0) {
      SpillPoint s;
      s.index = i;
      s.x_before = curve[i - 1].x;
      s.x_after = curve[i].x;
      s.level_before = best;
      s.level_after = curve[i].y;
      s.drop = 1.0 - curve[i].y / best;
      spills.push_back(s);
      best = curve[i].y;  // the new plateau starts here
      continue;
    }
    best = std::max(best, curve[i].y);
  }
  return spills;
}

}  // namespace anerd::probes
