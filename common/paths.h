// Where anerd keeps its socket and state, and how endpoints are spelled. Pure functions of the
// environment (HOME, XDG_RUNTIME_DIR, XDG_STATE_HOME, ANERD_HOST); thread-safe.
#ifndef ANERD_COMMON_PATHS_H_
#define ANERD_COMMON_PATHS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd {

// macOS: ~/Library/Application Support/anerd; Linux: ${XDG_STATE_HOME:-~/.local/state}/anerd.
std::string DefaultStateDir();

// macOS: <state dir>/anerd.sock; Linux: $XDG_RUNTIME_DIR/anerd/anerd.sock when XDG_RUNTIME_DIR is
// set, else ~/.local/state/anerd/anerd.sock.
std::string DefaultSocketPath();

// Directory for log files: macOS ~/Library/Logs/anerd; Linux <state dir>/logs.
std::string DefaultLogDir(absl::string_view state_dir);

// A parsed endpoint: either a Unix socket path or a TCP host:port.
struct Endpoint {
  bool is_unix = true;
  std::string path;       // when is_unix
  std::string host_port;  // when !is_unix, e.g. "127.0.0.1:7070" or "[::1]:7070"
  // The gRPC target string ("unix:/abs/path" or "host:port").
  std::string GrpcTarget() const;
  std::string ToString() const { return GrpcTarget(); }
};

// Parses "unix:PATH", an absolute or relative path (contains '/'), or "HOST:PORT". Returns
// INVALID_ARGUMENT naming the problem otherwise.
absl::StatusOr<Endpoint> ParseEndpoint(absl::string_view spec);

// The endpoint a client uses: `flag` if non-empty, else $ANERD_HOST, else the default socket.
absl::StatusOr<Endpoint> ResolveClientEndpoint(absl::string_view flag);

// Creates `dir` and its parents; the leaf gets `mode` (chmod'ed even if it existed).
absl::Status MakeDirs(const std::string& dir, int mode);

// Home directory ($HOME, else the passwd entry).
std::string HomeDir();

// The absolute path of the running executable (to start worker processes with); "" if the
// system does not say. Linux: /proc/self/exe; macOS: _NSGetExecutablePath, resolved.
std::string SelfExecutablePath();

}  // namespace anerd

#endif  // ANERD_COMMON_PATHS_H_
