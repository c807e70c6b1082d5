// A daemon on a loopback TCP port that accepts named bearer tokens, for the authorization, quota
// and metrics tests: each name gets a token line in `<dir>/tokens` (the daemon's --auth-tokens)
// and a file `<dir>/<name>.tok` anectl can read with --token-file.
//
// Threads: one test thread. Ownership: the fixture owns the daemon process (stopped when it is
// destroyed) and the clients it hands out by reference.
#ifndef ANERD_TESTS_TESTING_TOKEN_DAEMON_H_
#define ANERD_TESTS_TESTING_TOKEN_DAEMON_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/lib/client.h"
#include "tests/testing/process_harness.h"

namespace anerd::testing {

class TokenDaemon {
 public:
  // `dir`: the directory for the daemon's state, socket, log and the token files (not owned).
  explicit TokenDaemon(std::string dir);

  // Creates a token for `name` with `anectl token create` (an admin token when `admin`).
  absl::Status AddToken(const std::string& name, bool admin = false);
  // Starts anerd on a free loopback port with the tokens plus `extra_flags`.
  absl::Status Start(const std::vector<std::string>& extra_flags = {});

  const std::string& token(const std::string& name) const { return tokens_.at(name); }
  std::string tokens_file() const { return dir_ + "/tokens"; }
  std::string token_file(const std::string& name) const { return dir_ + "/" + name + ".tok"; }
  const std::string& address() const { return address_; }  // "127.0.0.1:PORT"
  int port() const { return port_; }
  DaemonProcess& daemon() { return daemon_; }

  // A client of its own holding `token` (any string, "" for none).
  std::unique_ptr<client::AnerdClient> NewClient(const std::string& token) const;
  // The client of `name`, created on first use and kept.
  client::AnerdClient& As(const std::string& name);
  // anectl over TCP as `name`: `anectl --host ADDRESS --token-file <name>.tok args...`.
  RunResult Anectl(const std::string& name, const std::vector<std::string>& args) const;
  // Compiles the tiny test kernel ScaleMilText(8, scale) as the client; returns its id.
  static absl::StatusOr<std::string> CompileScaled(client::AnerdClient& c, double scale);

 private:
  std::string dir_;
  DaemonProcess daemon_;
  int port_;
  std::string address_;
  std::map<std::string, std::string> tokens_;
  std::map<std::string, std::unique_ptr<client::AnerdClient>> clients_;
};

}  // namespace anerd::testing

#endif  // ANERD_TESTS_TESTING_TOKEN_DAEMON_H_
