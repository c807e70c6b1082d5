#include "server/engine/engine.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/version.h"

namespace anerd::engine {
namespace {

std::string OsDescription() {
  utsname u{};
  if (uname(&u) != 0) return kSystem;
  return absl::StrCat(u.sysname, " ", u.release, " ", u.machine);
}

}  // namespace

struct Engine::Backends {
  std::vector<BackendSummary> summaries;
  std::string default_name;
};

Engine::Engine(EngineOptions options)
    : options_(std::move(options)), started_(absl::Now()), backends_(new Backends) {}

Engine::~Engine() { Shutdown(); }

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options) {
  std::unique_ptr<Engine> engine(new Engine(options));
  return engine;
}

DaemonInfo Engine::Info() const {
  DaemonInfo info;
  info.version = kVersion;
  info.build = absl::StrCat(kBuildType, ", ", kCompiler);
  info.os = OsDescription();
  info.uptime_seconds = absl::ToDoubleSeconds(absl::Now() - started_);
  info.pid = getpid();
  info.state_dir = options_.state_dir;
  info.socket_path = options_.socket_path;
  info.backends = backends_->summaries;
  info.default_backend = backends_->default_name;
  return info;
}

void Engine::Shutdown() {}

}  // namespace anerd::engine
