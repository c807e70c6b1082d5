#include "server/metrics/peer_uid.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace anerd::metrics {
namespace {

// One endpoint as /proc/net/tcp{,6} prints it: the address as 32-bit words in the kernel's own
// byte order (each printed with %08X, so parsing a word gives back the word as stored), then the
// port in host order.
struct Endpoint {
  std::vector<uint32_t> words;
  uint16_t port = 0;
};

bool ParseEndpoint(const std::string& text, Endpoint* out) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos || colon % 8 != 0 || colon == 0) return false;
  for (size_t i = 0; i < colon; i += 8) {
    uint32_t word = 0;
    if (!absl::SimpleHexAtoi(text.substr(i, 8), &word)) return false;
    out->words.push_back(word);
  }
  uint32_t port = 0;
  if (!absl::SimpleHexAtoi(text.substr(colon + 1), &port) || port > 0xffff) return false;
  out->port = static_cast<uint16_t>(port);
  return true;
}

// The same form for a socket address (AF_INET or AF_INET6).
bool FromSockaddr(const sockaddr_storage& addr, Endpoint* out) {
  if (addr.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&addr);
    out->words = {v4->sin_addr.s_addr};
    out->port = ntohs(v4->sin_port);
    return true;
  }
  if (addr.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    out->words.resize(4);
    for (int i = 0; i < 4; ++i) {
      uint32_t word;
      std::memcpy(&word, v6->sin6_addr.s6_addr + 4 * i, sizeof(word));
      out->words[i] = word;
    }
    out->port = ntohs(v6->sin6_port);
    return true;
  }
  return false;
}

bool Same(const Endpoint& a, const Endpoint& b) { return a.words == b.words && a.port == b.port; }

// A numeric address and port as a socket address; false when `ip` is neither IPv4 nor IPv6.
bool ToSockaddr(const std::string& ip, int port, sockaddr_storage* out) {
  if (port < 0 || port > 0xffff) return false;
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    return true;
  }
  return false;
}

std::optional<uint32_t> PeerUidOf(const sockaddr_storage& peer, const sockaddr_storage& self) {
  Endpoint want_local, want_remote;  // the client's socket: its local is our peer
  if (!FromSockaddr(peer, &want_local) || !FromSockaddr(self, &want_remote)) return std::nullopt;
  std::ifstream table(peer.ss_family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6");
  std::string line;
  std::getline(table, line);  // header
  while (std::getline(table, line)) {
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 10) continue;
    Endpoint local, remote;
    if (!ParseEndpoint(f[1], &local) || !ParseEndpoint(f[2], &remote)) continue;
    if (!Same(local, want_local) || !Same(remote, want_remote)) continue;
    uint32_t uid = 0;
    uint64_t inode = 0;
    if (!absl::SimpleAtoi(f[7], &uid) || !absl::SimpleAtoi(f[9], &inode) || inode == 0) {
      return std::nullopt;
    }
    return uid;
  }
  return std::nullopt;
}

}  // namespace

std::optional<uint32_t> LoopbackPeerUid(int conn) {
  sockaddr_storage peer{}, self{};
  socklen_t peer_len = sizeof(peer), self_len = sizeof(self);
  if (::getpeername(conn, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0 ||
      ::getsockname(conn, reinterpret_cast<sockaddr*>(&self), &self_len) != 0) {
    return std::nullopt;
  }
  return PeerUidOf(peer, self);
}

std::optional<uint32_t> LoopbackPeerUid(const std::string& peer_ip, int peer_port,
                                        const std::string& our_ip, int our_port) {
  sockaddr_storage peer{}, self{};
  if (!ToSockaddr(peer_ip, peer_port, &peer) || !ToSockaddr(our_ip, our_port, &self) ||
      peer.ss_family != self.ss_family) {
    return std::nullopt;
  }
  return PeerUidOf(peer, self);
}

}  // namespace anerd::metrics
