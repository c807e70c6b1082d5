#include "server/service/client_quotas.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace anerd::service {

absl::StatusOr<std::unique_ptr<ClientQuotas::Slot>> ClientQuotas::AcquireQueued(
    const std::string& client) {
  absl::MutexLock lock(&mu_);
  int64_t& count = queued_[client];
  if (limits_.queued > 0 && count >= limits_.queued) {
    return absl::ResourceExhaustedError(
        absl::StrCat("queued-request quota: client ", client, " already has ", count,
                     " requests in flight, its limit (anerd --quota-queued=", limits_.queued,
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

absl::StatusOr<sessions::SessionSnapshot> ClientQuotas::StartSession(
    const std::string& client, sessions::SessionManager* sessions, const std::string& resuming,
    const std::function<absl::StatusOr<sessions::SessionSnapshot>()>& start) {
  absl::MutexLock lock(&session_mu_);
  if (limits_.sessions > 0) {
    int64_t active = 0;
    for (const sessions::SessionSnapshot& s : sessions->List()) {
      if (s.owner == client && s.id != resuming && sessions::IsActive(s.state)) ++active;
    }
    if (active >= limits_.sessions) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "session quota: client ", client, " already has ", active,
          " active training sessions, its limit (anerd --quota-sessions=", limits_.sessions,
          "); stop one with anectl train stop or wait for it to finish"));
    }
  }
  return start();
}

}  // namespace anerd::service
