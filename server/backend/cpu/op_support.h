// What the CPU backend runs: the op names (one list, taken from the planner's handler table) and
// the few operand-shape rules beyond the name. Pure functions; thread-safe.
#ifndef ANERD_SERVER_BACKEND_CPU_OP_SUPPORT_H_
#define ANERD_SERVER_BACKEND_CPU_OP_SUPPORT_H_

#include <string>
#include <vector>

#include "server/backend/backend.h"

namespace anerd::backend::cpu {

// Every op the CPU backend executes (sorted): the ops the planner has a handler for.
const std::vector<std::string>& CpuSupportedOps();

// Why the CPU backend cannot run `query` ("unknown op", or a shape rule such as "only 1-D and 2-D
// convolutions"), or "" when it can. Operands missing from the query are not judged.
std::string CpuRefusal(const OpQuery& query);

}  // namespace anerd::backend::cpu

#endif  // ANERD_SERVER_BACKEND_CPU_OP_SUPPORT_H_
