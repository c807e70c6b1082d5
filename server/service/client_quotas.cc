#include "server/service/client_quotas.h"

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace anerd::service {

std::string ClientIdentity(const grpc::ServerContextBase& context, const PeerUidLookup& peer_uid,
                           const TokenNameLookup& token_name) {
  const std::string peer = context.peer();
  if (absl::StartsWith(peer, "ipv4:") || absl::StartsWith(peer, "ipv6:")) {
    auto it = context.client_metadata().find("authorization");
    if (token_name && it != context.client_metadata().end()) {
      std::optional<std::string> name =
          token_name(absl::string_view(it->second.data(), it->second.size()));
      if (name.has_value()) return absl::StrCat("token:", *name);
    }
    return "tcp:anonymous";
  }
  if (peer_uid) {
    if (std::optional<uint32_t> uid = peer_uid(peer)) return absl::StrCat("uid:", *uid);
  }
  return "local:unknown";
}

bool IsLocalClient(const std::string& client) {
  return absl::StartsWith(client, "uid:") || absl::StartsWith(client, "local:");
}

absl::StatusOr<std::unique_ptr<ClientQuotas::Slot>> ClientQuotas::AcquireQueued(
    const std::string& client) {
  absl::MutexLock lock(&mu_);
  int64_t& count = queued_[client];
  if (limits_.queued > 0 && count >= limits_.queued) {
    return absl::ResourceExhaustedError(
        absl::StrCat("queued-request quota: client ", client, " already has ", count,
                     " requests in flight, its limit (anerd --quota_queued=", limits_.queued,
                     "); retry when one finishes"));
  }
  ++count;
  return std::make_unique<Slot>(this, client);
}

void ClientQuotas::ReleaseQueued(const std::string& client) {
  absl::MutexLock lock(&mu_);
  auto it = queued_.find(client);
  if (it != queued_.end() && --it->second <= 0) queued_.erase(it);
}

absl::StatusOr<engine::SessionSnapshot> ClientQuotas::StartSession(
    const std::string& client, engine::SessionManager* sessions, const std::string& resuming,
    const std::function<absl::StatusOr<engine::SessionSnapshot>()>& start) {
  absl::MutexLock lock(&session_mu_);
  if (limits_.sessions > 0) {
    int64_t active = 0;
    for (const auto& [id, owner] : session_owner_) {
      if (owner != client || id == resuming) continue;
      absl::StatusOr<engine::SessionSnapshot> s = sessions->Get(id);
      if (s.ok() && engine::IsActive(s->state)) ++active;
    }
    if (active >= limits_.sessions) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "session quota: client ", client, " already has ", active,
          " active training sessions, its limit (anerd --quota_sessions=", limits_.sessions,
          "); stop one with anectl train stop or wait for it to finish"));
    }
  }
  absl::StatusOr<engine::SessionSnapshot> snapshot = start();
  if (snapshot.ok()) session_owner_[snapshot->id] = client;
  return snapshot;
}

void ClientQuotas::ForgetSession(const std::string& id) {
  absl::MutexLock lock(&session_mu_);
  session_owner_.erase(id);
}

}  // namespace anerd::service
