#include "server/service/authz.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace anerd::service {

bool Caller::SeesAny(const std::vector<std::string>& owners) const {
  return admin || std::find(owners.begin(), owners.end(), client) != owners.end();
}

Caller CallerFor(const grpc::ServerContextBase& context, const PeerUidLookup& peer_uid,
                 const TokenLookup& token) {
  Caller caller;
  const std::string peer = context.peer();
  if (absl::StartsWith(peer, "ipv4:") || absl::StartsWith(peer, "ipv6:")) {
    caller.remote = true;
    caller.client = "tcp:anonymous";
    auto it = context.client_metadata().find("authorization");
    if (token && it != context.client_metadata().end()) {
      std::optional<TokenIdentity> found =
          token(absl::string_view(it->second.data(), it->second.size()));
      if (found.has_value()) {
        caller.client = absl::StrCat("token:", found->name);
        caller.admin = found->admin;
      }
    }
    return caller;
  }
  caller.admin = true;  // the daemon's own user (see the file comment of authz.h)
  caller.client = "local:unknown";
  if (peer_uid) {
    if (std::optional<uint32_t> uid = peer_uid(peer)) caller.client = absl::StrCat("uid:", *uid);
  }
  return caller;
}

absl::Status RemotePathError(const Caller& caller, absl::string_view field,
                             const std::string& path) {
  if (!caller.remote || path.empty()) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      field,
      ": remote (TCP) clients cannot name files on the daemon's machine; remote clients "
      "must upload their data and models (UploadArtifact, anectl data push / model push; "
      "anectl train start uploads local files itself) and name them by artifact id"));
}

}  // namespace anerd::service
