// Registration of every MIL op with its shape/type inference function (coremltools iOS15-iOS18
// semantics). Called once by DefaultOpRegistry(); the one explicit registration point. The typed
// shape functions it adapts (InferConvShape, InferMatmulShape, ...) are public in
// shape_functions.h.
#ifndef ANERD_COMMON_MIL_SHAPE_INFERENCE_H_
#define ANERD_COMMON_MIL_SHAPE_INFERENCE_H_

#include "common/mil/op_registry.h"

namespace anerd::mil {

void RegisterMilOps(OpRegistry* registry);

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_SHAPE_INFERENCE_H_
