// The uid of the process on the other end of a loopback TCP connection, for the metrics
// endpoint's same-user rule (metrics.h). TCP has no SO_PEERCRED; on Linux the client's own socket
// is the /proc/net/tcp (or tcp6) line whose local address is our peer's and whose remote address is
// ours, and that line's uid column is the uid that created the client's socket. A line whose inode
// is 0 (an orphaned socket, e.g. already closed) does not count.
//
// Thread-safety: a pure function of the kernel's tables.
#ifndef ANERD_SERVER_METRICS_PEER_UID_H_
#define ANERD_SERVER_METRICS_PEER_UID_H_

#include <cstdint>
#include <optional>
#include <string>

namespace anerd::metrics {

// The uid owning the peer socket of connected TCP socket `conn`; nullopt when it cannot be found
// (not loopback, another network namespace, no /proc: macOS) — callers then require a token.
std::optional<uint32_t> LoopbackPeerUid(int conn);

// The same for a connection known by its numeric addresses and ports ("127.0.0.1", "::1"), as
// HTTP libraries that hide the socket report them (the dashboard, server/ui/).
std::optional<uint32_t> LoopbackPeerUid(const std::string& peer_ip, int peer_port,
                                        const std::string& our_ip, int our_port);

}  // namespace anerd::metrics

#endif  // ANERD_SERVER_METRICS_PEER_UID_H_
