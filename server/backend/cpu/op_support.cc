#include "server/backend/cpu/op_support.h"

#include <algorithm>

#include "server/backend/cpu/planner.h"

namespace anerd::backend::cpu {

const std::vector<std::string>& CpuSupportedOps() {
  static const auto* ops = new std::vector<std::string>(Planner::PlannedOps());
  return *ops;
}

std::string CpuRefusal(const OpQuery& query) {
  const std::vector<std::string>& ops = CpuSupportedOps();
  if (!std::binary_search(ops.begin(), ops.end(), query.op)) return "unknown op";
  if (query.op == "conv") {
    const mil::TensorType* x = query.Input("x");
    if (x != nullptr && x->rank() != 3 && x->rank() != 4) return "only 1-D and 2-D convolutions";
  }
  return "";
}

}  // namespace anerd::backend::cpu
