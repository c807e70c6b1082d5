#include "server/backend/registry.h"

#include "server/backend/cpu/cpu_backend.h"

namespace anerd::backend {

std::vector<std::unique_ptr<Backend>> CreateBackends(const RegistryOptions& options) {
  std::vector<std::unique_ptr<Backend>> backends;
  cpu::CpuBackendOptions cpu_options;
  cpu_options.compile_budget = options.compile_budget;
  backends.push_back(std::make_unique<cpu::CpuBackend>(cpu_options));
  return backends;
}

BackendRegistry::BackendRegistry(const RegistryOptions& options)
    : backends_(CreateBackends(options)) {}

Backend* BackendRegistry::Find(absl::string_view name) const {
  for (const auto& b : backends_) {
    if (b->Describe().name == name) return b.get();
  }
  return nullptr;
}

std::vector<std::string> BackendRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& b : backends_) out.push_back(b->Describe().name);
  return out;
}

}  // namespace anerd::backend
