// Per-client quotas (issue 11): limits on kernels stored, concurrent (active) training sessions and
// queued requests, each per client, each 0 = unlimited. A limit hit is RESOURCE_EXHAUSTED naming
// the client, the limit and the daemon flag that raises it.
//
// Who is a client: the caller's identity (authz.h, Caller::client): "token:NAME" for an
// authenticated TCP caller (named from the call's own authorization header; the auth-context
// property cannot be used: gRPC keeps it per connection, and one connection may carry several
// clients' calls), "uid:N" for a Unix-socket caller.
//
// What counts:
//   kernels  kernels the client owns in the KernelStore (compiling one adds ownership, deleting
//            releases it; content-addressed kernels shared by several clients count for each);
//   sessions active sessions the client owns (SessionSnapshot::owner, persisted with the session);
//   artifacts artifacts the client owns and their total bytes (checked by the artifact store when
//            an upload commits);
//   queued   the client's CompileKernel, EvalKernel and RunProbe calls in flight (from the call's
//            start to its end, so an open compile stream holds a slot).
//
// Thread-safety: all methods are thread-safe.
#ifndef ANERD_SERVER_SERVICE_CLIENT_QUOTAS_H_
#define ANERD_SERVER_SERVICE_CLIENT_QUOTAS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/sessions/session_manager.h"

namespace anerd::service {

struct QuotaLimits {
  int64_t kernels = 0;   // --quota-kernels
  int64_t sessions = 0;  // --quota-sessions
  int64_t queued = 0;    // --quota-queued
  // Artifacts the client owns (artifact_store.h; shared ones count for each owner).
  int64_t artifacts = 0;        // --quota-artifacts
  uint64_t artifact_bytes = 0;  // --quota-artifact-bytes
};

class ClientQuotas {
 public:
  explicit ClientQuotas(QuotaLimits limits) : limits_(limits) {}

  const QuotaLimits& limits() const { return limits_; }

  // A held slot in the client's queued-request count; released on destruction.
  class Slot {
   public:
    Slot(ClientQuotas* quotas, std::string client) : quotas_(quotas), client_(std::move(client)) {}
    ~Slot() { quotas_->ReleaseQueued(client_); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    ClientQuotas* quotas_;
    std::string client_;
  };
  // A slot, or RESOURCE_EXHAUSTED when `client` already has `queued` requests in flight.
  absl::StatusOr<std::unique_ptr<Slot>> AcquireQueued(const std::string& client);

  // Runs `start` (a SessionManager Start or Resume) unless `client` already owns `sessions` active
  // sessions (RESOURCE_EXHAUSTED). `resuming` is excluded from the count (a session being resumed
  // is not active yet). Starts are serialised, so two cannot both pass the check.
  absl::StatusOr<sessions::SessionSnapshot> StartSession(
      const std::string& client, sessions::SessionManager* sessions, const std::string& resuming,
      const std::function<absl::StatusOr<sessions::SessionSnapshot>()>& start);

 private:
  void ReleaseQueued(const std::string& client);

  const QuotaLimits limits_;
  absl::Mutex mu_;
  std::map<std::string, int64_t> queued_ ABSL_GUARDED_BY(mu_);
  // Held across a Start so two Starts cannot both pass the check.
  absl::Mutex session_mu_ ABSL_ACQUIRED_AFTER(mu_);
};

}  // namespace anerd::service

#endif  // ANERD_SERVER_SERVICE_CLIENT_QUOTAS_H_
