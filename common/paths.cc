#include "common/paths.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__APPLE__)
#include <mach-o/dyld.h>
#endif

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/version.h"

namespace anerd {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

bool IsMac() { return kIsMacOS; }

// Canonical form of `path`; "" when it does not resolve.
std::string RealPath(const std::string& path) {
  char resolved[PATH_MAX];
  return ::realpath(path.c_str(), resolved) == nullptr ? "" : std::string(resolved);
}

// Whether canonical `path` is canonical `dir` or lies under it.
bool IsUnder(const std::string& path, const std::string& dir) {
  return path == dir || absl::StartsWith(path, dir == "/" ? dir : dir + "/");
}

// Whether a component of canonical `path` below canonical `root` starts with '.'.
bool HasDotComponentBelow(const std::string& path, const std::string& root) {
  for (absl::string_view part : absl::StrSplit(absl::string_view(path).substr(root.size()), '/')) {
    if (!part.empty() && part[0] == '.') return true;
  }
  return false;
}

// OK when canonical `resolved` may be read (see ResolveUnderRoots).
absl::Status CheckUnderRoots(absl::string_view field, const std::string& resolved,
                             const ClientPathRoots& roots) {
  const std::string state_dir = RealPath(roots.state_dir);
  if (!state_dir.empty() && IsUnder(resolved, state_dir)) {
    return absl::PermissionDeniedError(absl::StrCat(
        field, ": '", resolved, "' is in the daemon's state dir, which is never readable as data"));
  }
  for (const std::string& secret : roots.secret_paths) {
    if (!secret.empty() && RealPath(secret) == resolved) {
      return absl::PermissionDeniedError(
          absl::StrCat(field, ": '", resolved, "' is one of the daemon's own secret files"));
    }
  }
  bool hidden = false;
  for (const std::string& root : roots.roots) {
    const std::string r = RealPath(root);
    if (r.empty() || resolved == r || !IsUnder(resolved, r)) continue;
    if (!HasDotComponentBelow(resolved, r)) return absl::OkStatus();
    hidden = true;
  }
  if (hidden) {
    return absl::PermissionDeniedError(
        absl::StrCat(field, ": '", resolved,
                     "' is a dot-file or lies in a dot-directory, which are never readable as "
                     "data even under a data root"));
  }
  return absl::PermissionDeniedError(
      absl::StrCat(field, ": '", resolved, "' is outside the daemon's data roots (",
                   absl::StrJoin(roots.roots, ", "), "); allow it with anerd --data-root"));
}

}  // namespace

std::string HomeDir() {
  std::string home = Env("HOME");
  if (!home.empty()) return home;
  const passwd* pw = getpwuid(getuid());
  return pw != nullptr && pw->pw_dir != nullptr ? pw->pw_dir : "/tmp";
}

std::string DefaultStateDir() {
  if (IsMac()) return HomeDir() + "/Library/Application Support/anerd";
  std::string xdg = Env("XDG_STATE_HOME");
  if (xdg.empty()) xdg = HomeDir() + "/.local/state";
  return xdg + "/anerd";
}

std::string DefaultSocketPath() {
  if (IsMac()) return DefaultStateDir() + "/anerd.sock";
  const std::string runtime = Env("XDG_RUNTIME_DIR");
  if (!runtime.empty()) return runtime + "/anerd/anerd.sock";
  return HomeDir() + "/.local/state/anerd/anerd.sock";
}

std::string DefaultLogDir(absl::string_view state_dir) {
  if (IsMac()) return HomeDir() + "/Library/Logs/anerd";
  return absl::StrCat(state_dir, "/logs");
}

std::string Endpoint::GrpcTarget() const {
  return is_unix ? absl::StrCat("unix:", path) : host_port;
}

absl::StatusOr<Endpoint> ParseEndpoint(absl::string_view spec) {
  Endpoint ep;
  if (spec.empty()) return absl::InvalidArgumentError("empty endpoint");
  if (absl::StartsWith(spec, "unix:")) {
    ep.path = std::string(spec.substr(5));
    if (ep.path.empty()) return absl::InvalidArgumentError("endpoint 'unix:' has no path");
    return ep;
  }
  if (absl::StrContains(spec, '/')) {
    ep.path = std::string(spec);
    return ep;
  }
  const size_t colon = spec.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint '", spec, "' is neither unix:PATH nor HOST:PORT"));
  }
  int port = 0;
  if (!absl::SimpleAtoi(spec.substr(colon + 1), &port) || port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint '", spec, "' has an invalid port (want 1-65535)"));
  }
  ep.is_unix = false;
  ep.host_port = std::string(spec);
  return ep;
}

absl::StatusOr<Endpoint> ResolveClientEndpoint(absl::string_view flag) {
  if (!flag.empty()) return ParseEndpoint(flag);
  const std::string env = Env("ANERD_HOST");
  if (!env.empty()) return ParseEndpoint(env);
  Endpoint ep;
  ep.path = DefaultSocketPath();
  return ep;
}

absl::Status MakeDirs(const std::string& dir, int mode) {
  if (dir.empty()) return absl::InvalidArgumentError("empty directory path");
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string prefix = dir.substr(0, pos);
    const bool leaf = pos == dir.size();
    if (::mkdir(prefix.c_str(), leaf ? mode : 0755) != 0 && errno != EEXIST) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create directory ", prefix, ": ", std::strerror(errno)));
    }
  }
  if (::chmod(dir.c_str(), mode) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot chmod ", dir, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::string SelfExecutablePath() {
#if defined(__APPLE__)
  char buf[PATH_MAX];
  uint32_t size = sizeof(buf);
  if (_NSGetExecutablePath(buf, &size) != 0) return "";
  char real[PATH_MAX];
  return realpath(buf, real) != nullptr ? std::string(real) : std::string(buf);
#else
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
#endif
}

absl::StatusOr<std::string> ResolveUnderRoots(absl::string_view field, const std::string& path,
                                              const ClientPathRoots& roots) {
  const std::string resolved = RealPath(path);
  if (resolved.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": cannot open '", path, "' on the daemon's machine"));
  }
  if (absl::Status s = CheckUnderRoots(field, resolved, roots); !s.ok()) return s;
  return resolved;
}

}  // namespace anerd
