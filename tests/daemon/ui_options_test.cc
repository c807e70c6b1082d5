// --ui-listen beyond loopback is refused without TLS and bearer tokens by the same rule as
// --listen (daemon.h CheckUiOptions → the shared TCP exposure check); on loopback it needs neither
// (the page is open to the daemon's own uid or an admin token).
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "server/daemon/daemon.h"

namespace anerd::daemon {
namespace {

TEST(CheckUiOptions, LoopbackNeedsNoTokensOrTls) {
  for (const char* address : {"127.0.0.1:8787", "localhost:0", "[::1]:8787"}) {
    DaemonOptions options;
    options.ui_listen = address;
    EXPECT_TRUE(CheckUiOptions(options).ok()) << address << ": " << CheckUiOptions(options);
    EXPECT_TRUE(CheckRemoteOptions(options).ok()) << address;
  }
}

TEST(CheckUiOptions, NonLoopbackWithoutTlsAndTokensIsRefusedNamingWhatIsMissing) {
  DaemonOptions options;
  options.ui_listen = "0.0.0.0:8787";
  const absl::Status status = CheckUiOptions(options);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const std::string message(status.message());
  EXPECT_TRUE(absl::StrContains(message, "--ui-listen 0.0.0.0:8787 is not a loopback address"))
      << message;
  EXPECT_TRUE(absl::StrContains(message, "--tls-cert")) << message;
  EXPECT_TRUE(absl::StrContains(message, "--auth-tokens")) << message;

  options.auth_tokens = "/tmp/tokens";  // tokens alone are not enough beyond loopback
  const std::string tokens_only(CheckUiOptions(options).message());
  EXPECT_TRUE(absl::StrContains(tokens_only, "--tls-cert")) << tokens_only;
  EXPECT_FALSE(absl::StrContains(tokens_only, "--auth-tokens FILE")) << tokens_only;

  options.auth_tokens.clear();  // TLS alone is not enough either
  options.tls_cert = "/tmp/cert.pem";
  options.tls_key = "/tmp/key.pem";
  const std::string tls_only(CheckUiOptions(options).message());
  EXPECT_TRUE(absl::StrContains(tls_only, "--auth-tokens")) << tls_only;
  EXPECT_FALSE(absl::StrContains(tls_only, "--tls-cert (")) << tls_only;
}

TEST(CheckUiOptions, NonLoopbackWithTlsAndTokensIsAccepted) {
  DaemonOptions options;
  options.ui_listen = "192.0.2.10:8787";
  options.tls_cert = "/tmp/cert.pem";
  options.tls_key = "/tmp/key.pem";
  options.auth_tokens = "/tmp/tokens";
  EXPECT_TRUE(CheckUiOptions(options).ok()) << CheckUiOptions(options);
  // The TLS and token flags serve the dashboard without a gRPC --listen.
  EXPECT_TRUE(CheckRemoteOptions(options).ok()) << CheckRemoteOptions(options);
}

TEST(CheckUiOptions, TheSameRuleRefusesANonLoopbackListen) {
  DaemonOptions options;
  options.listen = "0.0.0.0:50051";
  const std::string message(CheckRemoteOptions(options).message());
  EXPECT_TRUE(absl::StrContains(message, "--listen 0.0.0.0:50051 is not a loopback address"))
      << message;
  EXPECT_TRUE(absl::StrContains(message, "--tls-cert")) << message;
}

TEST(CheckUiOptions, AMalformedAddressIsNamed) {
  DaemonOptions options;
  options.ui_listen = "8787";
  EXPECT_TRUE(absl::StrContains(CheckUiOptions(options).message(), "--ui-listen wants HOST:PORT"));
}

}  // namespace
}  // namespace anerd::daemon
