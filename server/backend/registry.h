// The one place that lists backends. Later backends (ane, ane-sim) are added in registry.cc.
// Thread-safety: BackendRegistry is immutable after construction; const methods are thread-safe
// (the backends themselves are thread-safe, see backend.h).
#ifndef ANERD_SERVER_BACKEND_REGISTRY_H_
#define ANERD_SERVER_BACKEND_REGISTRY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/backend/backend.h"

namespace anerd::backend {

struct RegistryOptions {
  // Successful compiles each backend instance allows before Compile returns RESOURCE_EXHAUSTED;
  // 0 = unlimited (the daemon's --compile-budget, so worker recycling is exercised on Linux).
  int64_t compile_budget = 0;
};

// Creates every backend available on this platform, "cpu" first.
std::vector<std::unique_ptr<Backend>> CreateBackends(const RegistryOptions& options);

class BackendRegistry {
 public:
  explicit BackendRegistry(const RegistryOptions& options);
  // The backend registered under `name`, or nullptr. The registry keeps ownership.
  Backend* Find(absl::string_view name) const;
  // All backends, in registration order.
  const std::vector<std::unique_ptr<Backend>>& backends() const { return backends_; }
  std::vector<std::string> names() const;

 private:
  std::vector<std::unique_ptr<Backend>> backends_;
};

}  // namespace anerd::backend

#endif  // ANERD_SERVER_BACKEND_REGISTRY_H_
