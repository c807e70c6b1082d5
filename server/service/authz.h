// Authorization of one call (issue 16): who may see and touch which object, and which callers may
// name files on the daemon's machine.
//
// Owners: every object a client creates records the creating client's identity ("token:NAME" on
// TCP, "uid:N" on the Unix socket; see client_quotas.h) as its owner — training sessions (the
// sessions table's `owner` column, so it survives restarts), kernels (the KernelStore's
// kernel_owners; content-addressed kernels may have several owners, and a delete releases only the
// caller's ownership until none is left) and probe results (probe_results.owner).
//
// Visibility: a caller sees an object when it is an admin or one of the object's owners. For
// anyone else the object does not exist: every call naming it gets NOT_FOUND with exactly the
// message a missing id gets, and lists leave it out (clients resolve id prefixes and session names
// from those lists, so prefixes cannot probe for other clients' ids either).
//
// Admins: tokens marked "admin" in the token file (server/daemon/auth.h), and every Unix-socket
// caller. The socket is 0600 inside a 0700 directory and its peer uid is checked, so its callers
// are the daemon's own user, who can read the state dir (and every object in it) anyway; they keep
// seeing and managing everything, as before ownership existed. Objects without an owner (made
// before owners were recorded, or by in-process callers) are visible to admins only.
//
// Paths: remote (TCP) callers never name files on the daemon's machine (RemotePathError).
//
// Thread-safety: plain values and pure functions.
#ifndef ANERD_SERVER_SERVICE_AUTHZ_H_
#define ANERD_SERVER_SERVICE_AUTHZ_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"

namespace anerd::service {

// Maps a Unix-socket connection's peer string (as gRPC reports it) to the peer's uid, or nullopt
// when unknown.
using PeerUidLookup = std::function<std::optional<uint32_t>(const std::string& peer)>;

// What the token in an "authorization" header value is.
struct TokenIdentity {
  std::string name;
  bool admin = false;
};
// Maps an "authorization" header value to its token, or nullopt when it names no token.
using TokenLookup = std::function<std::optional<TokenIdentity>(absl::string_view)>;

struct Caller {
  // "token:NAME" (TCP with a known token), "tcp:anonymous" (TCP without one: in-process tests
  // only, the daemon's TCP port always checks tokens), "uid:N" (Unix socket) or "local:unknown"
  // (a non-TCP peer whose uid is unknown, e.g. an in-process channel).
  std::string client;
  bool admin = false;   // sees every object
  bool remote = false;  // arrived over TCP: may not name daemon-side paths

  // Whether the caller sees an object owned by `owner` ("" = unowned).
  bool Sees(const std::string& owner) const { return admin || (!owner.empty() && owner == client); }
  // Whether the caller sees an object owned by any of `owners` (several for shared kernels).
  bool SeesAny(const std::vector<std::string>& owners) const;
};

// The caller of one call (see Caller). Either lookup may be empty.
Caller CallerFor(const grpc::ServerContextBase& context, const PeerUidLookup& peer_uid,
                 const TokenLookup& token);

// PERMISSION_DENIED naming `field` when a remote caller names a daemon-side file `path`
// (non-empty); OK otherwise.
absl::Status RemotePathError(const Caller& caller, absl::string_view field,
                             const std::string& path);

}  // namespace anerd::service

#endif  // ANERD_SERVER_SERVICE_AUTHZ_H_
