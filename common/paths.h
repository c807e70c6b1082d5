// Where anerd keeps its socket and state, and how endpoints are spelled. Pure functions of the
// environment (HOME, XDG_RUNTIME_DIR, XDG_STATE_HOME, ANERD_HOST); thread-safe.
#ifndef ANERD_COMMON_PATHS_H_
#define ANERD_COMMON_PATHS_H_

#include <string>
#include <vector>

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

// Where files named by clients may be read from on the daemon's machine.
struct ClientPathRoots {
  std::vector<std::string> roots;  // --data-root: a path must lie below one of them
  std::string state_dir;           // never readable, even below a root
  // Files never readable even below a root: the token file, the TLS key.
  std::vector<std::string> secret_paths;
};

// The one check every file path a client names goes through (training data, init models).
// Returns the canonical path (symlinks and ".." resolved) when it lies below one of
// `roots.roots` with no dot-file or dot-directory component below that root, outside the state
// dir and is none of the secret paths. INVALID_ARGUMENT naming `field` when the path does not
// resolve; PERMISSION_DENIED naming `field`, the path and the reason otherwise. The caller still
// checks the file's type when it opens it (common/regular_file.h).
absl::StatusOr<std::string> ResolveUnderRoots(absl::string_view field, const std::string& path,
                                              const ClientPathRoots& roots);

}  // namespace anerd

#endif  // ANERD_COMMON_PATHS_H_
