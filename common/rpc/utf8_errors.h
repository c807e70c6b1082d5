// Naming the field when a request cannot be parsed because a proto3 `string` field holds bytes
// that are not UTF-8 (issue 16). protobuf (3.x) refuses such a message while parsing and names
// the field only in an ERROR log line; gRPC then fails a unary call with UNIMPLEMENTED and no
// message, and a stream's read just fails (the compile stream used to answer "no header was
// sent").
//
// CaptureUtf8ParseErrors installs a protobuf log handler that remembers, per thread, the field
// named by the last such error; TakeUtf8ParseError returns it and forgets it. gRPC parses a
// request on the thread that goes on to fail the call (unary: its status passes the server's
// interceptors there) or to run the reactor's OnReadDone (streams), so those places can answer
// INVALID_ARGUMENT naming the field.
//
// Thread-safety: CaptureUtf8ParseErrors once, before other threads start; the rest per thread.
#ifndef ANERD_COMMON_RPC_UTF8_ERRORS_H_
#define ANERD_COMMON_RPC_UTF8_ERRORS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"

namespace anerd {

// Installs the handler; other protobuf log lines go to spdlog (errors as errors, etc.).
void CaptureUtf8ParseErrors();

// The full name of the field ("anerd.v1.CompileKernelHeader.mil_text") of the last UTF-8 parse
// failure on this thread since the last call, if any.
std::optional<std::string> TakeUtf8ParseError();

// INVALID_ARGUMENT: "request field F is not valid UTF-8 ...".
absl::Status InvalidUtf8Error(const std::string& field);

}  // namespace anerd

#endif  // ANERD_COMMON_RPC_UTF8_ERRORS_H_
