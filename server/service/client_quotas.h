// Per-client quotas (issue 11): limits on kernels stored, concurrent (active) training sessions and
// queued requests, each per client, each 0 = unlimited. A limit hit is RESOURCE_EXHAUSTED naming
// the client, the limit and the daemon flag that raises it.
//
// Who is a client: an authenticated TCP caller is "token:NAME" (the name of the token in the call's
// own authorization header; the auth-context property cannot be used: gRPC keeps it per
// connection, and one connection may carry several clients' calls); a Unix-socket
// caller is "uid:N" (its peer uid, read by the listener at accept time and looked up here by the
// connection's peer string); a plain loopback TCP caller without tokens is "tcp:anonymous".
//
// What counts:
//   kernels  kernels the client owns in the KernelStore (compiling one adds ownership, deleting
//            releases it; content-addressed kernels shared by several clients count for each);
//   sessions the client's sessions that are queued, compiling or running (Start and Resume);
//   queued   the client's CompileKernel, EvalKernel and RunProbe calls in flight (from the call's
//            start to its end, so an open compile stream holds a slot).
// Session ownership is kept in memory: sessions resumed after a daemon restart are unowned until a
// client resumes them.
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
#include "grpcpp/server_context.h"
#include "server/engine/session_manager.h"

namespace anerd::service {

struct QuotaLimits {
  int64_t kernels = 0;   // --quota_kernels
  int64_t sessions = 0;  // --quota_sessions
  int64_t queued = 0;    // --quota_queued
};

// Maps a Unix-socket connection's peer string (as gRPC reports it) to the peer's uid, or nullopt
// when unknown.
using PeerUidLookup = std::function<std::optional<uint32_t>(const std::string& peer)>;

// Maps an "authorization" header value to the token's name, or nullopt when it names no token.
using TokenNameLookup = std::function<std::optional<std::string>(absl::string_view)>;

// The client name for quotas (see the file comment). Either lookup may be empty.
std::string ClientIdentity(const grpc::ServerContextBase& context, const PeerUidLookup& peer_uid,
                           const TokenNameLookup& token_name);

// True for callers on the Unix socket (the daemon's own user): they may delete kernels other
// clients own.
bool IsLocalClient(const std::string& client);

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

  // Runs `start` (a SessionManager Start or Resume) unless `client` already has `sessions` active
  // sessions (RESOURCE_EXHAUSTED), and records the client as the owner of the resulting session.
  // `resuming` is excluded from the count (a session being resumed is not active yet).
  absl::StatusOr<engine::SessionSnapshot> StartSession(
      const std::string& client, engine::SessionManager* sessions, const std::string& resuming,
      const std::function<absl::StatusOr<engine::SessionSnapshot>()>& start);
  // Drops the owner record of a deleted session.
  void ForgetSession(const std::string& id);

 private:
  void ReleaseQueued(const std::string& client);

  const QuotaLimits limits_;
  absl::Mutex mu_;
  std::map<std::string, int64_t> queued_ ABSL_GUARDED_BY(mu_);
  // Session id -> owning client. Held across a Start so two Starts cannot both pass the check.
  absl::Mutex session_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::map<std::string, std::string> session_owner_ ABSL_GUARDED_BY(session_mu_);
};

}  // namespace anerd::service

#endif  // ANERD_SERVER_SERVICE_CLIENT_QUOTAS_H_
