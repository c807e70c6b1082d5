#include "tests/testing/token_daemon.h"

#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/paths.h"
#include "tests/testing/kernel_fixtures.h"

namespace anerd::testing {

TokenDaemon::TokenDaemon(std::string dir)
    : dir_(std::move(dir)),
      daemon_(dir_),
      port_(FreeLoopbackPort()),
      address_(absl::StrCat("127.0.0.1:", port_)) {}

absl::Status TokenDaemon::AddToken(const std::string& name, bool admin) {
  std::vector<std::string> args = {"token", "create", name, "--file", tokens_file()};
  if (admin) args.push_back("--admin");
  RunResult r = daemon_.Anectl(args);
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat("anectl token create ", name, ": ", r.err));
  }
  tokens_[name] = r.out.substr(0, r.out.find('\n'));
  std::ofstream(token_file(name)) << name << " " << tokens_[name] << "\n";
  return absl::OkStatus();
}

absl::Status TokenDaemon::Start(const std::vector<std::string>& extra_flags) {
  std::vector<std::string> flags = {"--listen=" + address_, "--insecure-loopback",
                                    "--auth-tokens=" + tokens_file()};
  flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
  return daemon_.Start(flags);
}

std::unique_ptr<client::AnerdClient> TokenDaemon::NewClient(const std::string& token) const {
  client::ClientOptions options;
  options.endpoint = *ParseEndpoint(address_);
  options.bearer_token = token;
  return client::AnerdClient::Create(options);
}

client::AnerdClient& TokenDaemon::As(const std::string& name) {
  std::unique_ptr<client::AnerdClient>& c = clients_[name];
  if (c == nullptr) c = NewClient(tokens_.at(name));
  return *c;
}

RunResult TokenDaemon::Anectl(const std::string& name, const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {AnectlBinary(), "--host", address_, "--token-file",
                                   token_file(name)};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv);
}

absl::StatusOr<std::string> TokenDaemon::CompileScaled(client::AnerdClient& c, double scale) {
  v1::CompileKernelHeader header;
  header.set_mil_text(ScaleMilText(8, scale));
  absl::StatusOr<v1::CompileKernelResponse> r = c.CompileKernel(header, {});
  if (!r.ok()) return r.status();
  return r->kernel().id();
}

}  // namespace anerd::testing
