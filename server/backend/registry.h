// The one place that lists backends (registry.cc), in preference order:
//   "ane"     — only on Apple, when AppleNeuralEngine.framework loads and a canary kernel matches
//               the CPU backend (else it is absent and unavailable() says why);
//   "cpu"     — always;
//   "ane-sim" — always (the simulated ANE, server/backend/ane/ane_device_sim.h).
// `--backend auto` picks the first.
// Thread-safety: BackendRegistry is immutable after construction; const methods are thread-safe
// (the backends themselves are thread-safe, see backend.h).
#ifndef ANERD_SERVER_BACKEND_REGISTRY_H_
#define ANERD_SERVER_BACKEND_REGISTRY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mil/ane_rules.h"
#include "server/backend/backend.h"

namespace anerd::backend {

struct RegistryOptions {
  // Compiles each backend instance allows before Compile returns RESOURCE_EXHAUSTED (the
  // daemon's --compile-budget, so worker recycling is exercised on Linux); 0 = the backend's
  // default: unlimited for cpu, ane::kDefaultCompileBudget (100 attempts) for ane and ane-sim.
  int64_t compile_budget = 0;
  // Tests only (anerd --testonly_sim): the simulated device's settings — injected faults, and
  // rules that differ from the table — as ane::ParseSimSettings reads them. "" = the defaults.
  std::string sim_settings;
  // The measured ANE rules in force over the table's (a capability probe persisted for this
  // device; how a worker process receives them, --ane_rules). Empty = the table's.
  mil::AneRuleOverrides ane_rules;
};

// A backend that this platform knows of but could not offer, and why.
struct UnavailableBackend {
  std::string name;
  std::string reason;
};

// Creates every backend available on this platform, in preference order (see above). When
// `unavailable` is not null it receives the backends left out and why.
std::vector<std::unique_ptr<Backend>> CreateBackends(
    const RegistryOptions& options, std::vector<UnavailableBackend>* unavailable = nullptr);

// Every backend name this platform knows, in preference order ({"ane", "cpu", "ane-sim"}),
// whether or not it can be created here.
std::vector<std::string> KnownBackendNames();

// Creates the one backend `name` (what a worker process does for its backend). NOT_FOUND for an
// unknown name; UNAVAILABLE, with the reason, for a backend this platform cannot offer;
// INVALID_ARGUMENT for bad sim_settings or ane_rules.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(absl::string_view name,
                                                       const RegistryOptions& options);

class BackendRegistry {
 public:
  explicit BackendRegistry(const RegistryOptions& options);
  // A registry of the given backends (e.g. worker proxies for some of them), in preference order.
  BackendRegistry(std::vector<std::unique_ptr<Backend>> backends,
                  std::vector<UnavailableBackend> unavailable);
  // The backend registered under `name`, or nullptr. The registry keeps ownership.
  Backend* Find(absl::string_view name) const;
  // All backends, in registration order.
  const std::vector<std::unique_ptr<Backend>>& backends() const { return backends_; }
  std::vector<std::string> names() const;
  // Backends left out on this platform and why (e.g. "ane" on Linux).
  const std::vector<UnavailableBackend>& unavailable() const { return unavailable_; }

 private:
  std::vector<UnavailableBackend> unavailable_;
  std::vector<std::unique_ptr<Backend>> backends_;
};

}  // namespace anerd::backend

#endif  // ANERD_SERVER_BACKEND_REGISTRY_H_
