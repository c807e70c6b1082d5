#include "server/backend/registry.h"

#include "absl/strings/str_cat.h"
#include "server/backend/ane/ane_backend.h"
#include "server/backend/ane/ane_device_sim.h"
#include "server/backend/cpu/cpu_backend.h"
#include "spdlog/spdlog.h"
#if defined(__APPLE__)
#include "server/backend/ane/ane_device_apple.h"
#endif

namespace anerd::backend {
namespace {

std::unique_ptr<Backend> MakeAne(std::shared_ptr<ane::AneDevice> device, const char* name,
                                 const RegistryOptions& registry) {
  ane::AneBackendOptions options;
  options.name = name;
  const int64_t configured = registry.compile_budget;
  options.compile_budget = ane::EffectiveCompileBudget(
      configured > 0 ? configured : ane::kDefaultCompileBudget, device->Info().compile_budget);
  auto backend = std::make_unique<ane::AneBackend>(std::move(device), options);
  if (absl::Status s = backend->UseMeasuredRules(registry.ane_rules); !s.ok()) {
    spdlog::warn("{}: measured ANE rules ignored: {}", name, s.ToString());
  }
  return backend;
}

// The real ANE: present only when the framework loads and the canary matches the CPU backend.
std::unique_ptr<Backend> TryAppleAne(const RegistryOptions& options, Backend& cpu,
                                     std::string* why) {
#if defined(__APPLE__)
  absl::StatusOr<std::unique_ptr<ane::AneDevice>> device = ane::CreateAppleDevice();
  if (!device.ok()) {
    *why = std::string(device.status().message());
    return nullptr;
  }
  std::unique_ptr<Backend> ane =
      MakeAne(std::shared_ptr<ane::AneDevice>(*std::move(device)), "ane", options);
  if (absl::Status canary = ane::RunCanary(*ane, cpu); !canary.ok()) {
    *why = absl::StrCat("canary kernel check failed: ", canary.message());
    return nullptr;
  }
  return ane;
#else
  (void)options;
  (void)cpu;
  *why = "the Apple Neural Engine needs macOS (AppleNeuralEngine.framework); not built here";
  return nullptr;
#endif
}

absl::StatusOr<std::unique_ptr<Backend>> MakeSim(const RegistryOptions& options) {
  absl::StatusOr<ane::SimRules> rules = ane::ParseSimSettings(options.sim_settings);
  if (!rules.ok()) return rules.status();
  return MakeAne(std::shared_ptr<ane::AneDevice>(ane::CreateSimDevice(*rules)), "ane-sim", options);
}

}  // namespace

std::vector<std::unique_ptr<Backend>> CreateBackends(const RegistryOptions& options,
                                                     std::vector<UnavailableBackend>* unavailable) {
  cpu::CpuBackendOptions cpu_options;
  cpu_options.compile_budget = options.compile_budget;
  auto cpu = std::make_unique<cpu::CpuBackend>(cpu_options);
  std::vector<std::unique_ptr<Backend>> backends;
  std::string why;
  // The canary runs on a scratch CPU backend so it does not use the daemon's budget.
  cpu::CpuBackend scratch(cpu::CpuBackendOptions{});
  if (std::unique_ptr<Backend> ane = TryAppleAne(options, scratch, &why)) {
    backends.push_back(std::move(ane));
  } else {
    if (unavailable != nullptr) unavailable->push_back({"ane", why});
  }
  backends.push_back(std::move(cpu));
  absl::StatusOr<std::unique_ptr<Backend>> sim = MakeSim(options);
  if (sim.ok()) {
    backends.push_back(*std::move(sim));
  } else if (unavailable != nullptr) {
    unavailable->push_back({"ane-sim", std::string(sim.status().message())});
  }
  return backends;
}

std::vector<std::string> KnownBackendNames() { return {"ane", "cpu", "ane-sim"}; }

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(absl::string_view name,
                                                       const RegistryOptions& options) {
  cpu::CpuBackendOptions cpu_options;
  cpu_options.compile_budget = options.compile_budget;
  if (name == "cpu") return std::unique_ptr<Backend>(new cpu::CpuBackend(cpu_options));
  if (name == "ane-sim") return MakeSim(options);
  if (name == "ane") {
    std::string why;
    cpu::CpuBackend scratch(cpu::CpuBackendOptions{});
    std::unique_ptr<Backend> ane = TryAppleAne(options, scratch, &why);
    if (ane == nullptr) return absl::UnavailableError(why);
    return ane;
  }
  return absl::NotFoundError(absl::StrCat("unknown backend '", name, "'"));
}

BackendRegistry::BackendRegistry(const RegistryOptions& options)
    : backends_(CreateBackends(options, &unavailable_)) {
  for (const UnavailableBackend& u : unavailable_) {
    spdlog::info("backend {} unavailable: {}", u.name, u.reason);
  }
}

BackendRegistry::BackendRegistry(std::vector<std::unique_ptr<Backend>> backends,
                                 std::vector<UnavailableBackend> unavailable)
    : unavailable_(std::move(unavailable)), backends_(std::move(backends)) {
  for (const UnavailableBackend& u : unavailable_) {
    spdlog::info("backend {} unavailable: {}", u.name, u.reason);
  }
}

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
