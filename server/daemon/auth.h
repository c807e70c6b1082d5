// Bearer-token authentication for the TCP listener and the metrics endpoint. The token file has one
// token per line, "NAME TOKEN" or "NAME TOKEN admin" (blank lines and lines starting with '#'
// ignored). An admin token sees and manages every client's sessions, kernels and probe results and
// may scrape the metrics page; any other token sees only what it created (server/service/authz.h).
// Every RPC on the TCP port must send "authorization: Bearer TOKEN": no or malformed header →
// UNAUTHENTICATED, a token not in the file → PERMISSION_DENIED. Tokens are compared in constant
// time and never logged (only names).
#ifndef ANERD_SERVER_DAEMON_AUTH_H_
#define ANERD_SERVER_DAEMON_AUTH_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/security/auth_metadata_processor.h"

namespace anerd::daemon {

struct NamedToken {
  std::string name;
  std::string token;
  bool admin = false;  // third field "admin"
};

// Parses a token file. INVALID_ARGUMENT (naming the line) for a malformed line (a third field other
// than "admin"), a token shorter than 16 characters or a duplicate name; NOT_FOUND when unreadable;
// FAILED_PRECONDITION when empty.
absl::StatusOr<std::vector<NamedToken>> LoadTokenFile(const std::string& path);

// True when a == b; the time taken depends only on the lengths' maximum, not on where they differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// The processor to install on the TCP port's credentials. Non-blocking; thread-safe (immutable).
// On success the auth context gets the property "anerd_token_name" = the token's name. Beware:
// gRPC hands the processor the *connection's* auth context, so on a connection that carried calls
// with different tokens the property holds several names; name a call's client with TokenNames.
// The authorization header is left in the call's metadata for TokenNames.
std::shared_ptr<grpc::AuthMetadataProcessor> NewTokenAuthProcessor(std::vector<NamedToken> tokens);

// Names the client of one call from its own "authorization" header (constant-time compares).
// Thread-safe (immutable).
class TokenNames {
 public:
  explicit TokenNames(std::vector<NamedToken> tokens) : tokens_(std::move(tokens)) {}
  // The token for an "authorization" value "Bearer TOKEN"; nullopt when none matches.
  std::optional<NamedToken> Find(absl::string_view authorization) const;
  // The token's name for an "authorization" value "Bearer TOKEN"; nullopt when none matches.
  std::optional<std::string> NameFor(absl::string_view authorization) const;

 private:
  const std::vector<NamedToken> tokens_;
};

}  // namespace anerd::daemon

#endif  // ANERD_SERVER_DAEMON_AUTH_H_
