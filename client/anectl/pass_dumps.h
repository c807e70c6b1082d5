// `anectl kernel compile --dump-passes DIR`: writes the pass dumps a CompileKernel response carries
// (anerd.v1.PassDump) as DIR/NN-pass.txt on the client's machine, so a remote daemon never writes
// client-named paths.
#ifndef ANERD_CLIENT_ANECTL_PASS_DUMPS_H_
#define ANERD_CLIENT_ANECTL_PASS_DUMPS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "anerd/v1/anerd.pb.h"

namespace anerd::anectl {

// Creates `dir` if needed and writes each dump to `dir`/NAME.txt, returning the paths written in
// order. INVALID_ARGUMENT for a dump name that is not [0-9a-z-]+ (a daemon must not choose paths
// outside `dir`); the filesystem error naming the path otherwise.
absl::StatusOr<std::vector<std::string>> WritePassDumps(
    const std::string& dir, const google::protobuf::RepeatedPtrField<v1::PassDump>& dumps);

}  // namespace anerd::anectl

#endif  // ANERD_CLIENT_ANECTL_PASS_DUMPS_H_
