// Remote access through the real daemon: TLS + bearer tokens accepted, missing/wrong tokens refused
// with UNAUTHENTICATED/PERMISSION_DENIED, tokens never logged, start-up refusals naming the missing
// flag, and anectl token create. The certificate is made at test time with the openssl CLI.
#include <unistd.h>

#include "anerd/v1/anerd.grpc.pb.h"
#include "client/lib/client.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunProgram;
using testing::RunResult;
using testing::TempDir;

constexpr char kOpenssl[] = "/usr/bin/openssl";

class RemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kOpenssl, X_OK) != 0) GTEST_SKIP() << "no openssl CLI to make a test certificate";
    tls_ = dir_.path() + "/tls";
    RunResult cert = RunProgram({kOpenssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                 "-keyout", dir_.path() + "/key.pem", "-out",
                                 dir_.path() + "/cert.pem", "-days", "1", "-subj", "/CN=localhost",
                                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"});
    ASSERT_EQ(cert.exit_code, 0) << cert.err;
    RunResult token = daemon_.Anectl({"token", "create", "alice", "--file", Tokens()});
    ASSERT_EQ(token.exit_code, 0) << token.err;
    token_ = token.out.substr(0, token.out.find('\n'));
    ASSERT_EQ(token_.size(), 64u);
    port_ = std::to_string(20000 + ::getpid() % 20000);
  }

  std::string Tokens() const { return dir_.path() + "/tokens"; }
  std::string Cert() const { return dir_.path() + "/cert.pem"; }
  std::string Key() const { return dir_.path() + "/key.pem"; }

  std::unique_ptr<client::AnerdClient> Client(const std::string& token) {
    client::ClientOptions options;
    options.endpoint = *ParseEndpoint("localhost:" + port_);
    options.bearer_token = token;
    options.tls_root_pem = testing::ReadFile(Cert());
    return client::AnerdClient::Create(options);
  }

  TempDir dir_;
  DaemonProcess daemon_{dir_.path()};
  std::string tls_, token_, port_;
};

TEST_F(RemoteTest, TlsWithTokenIsAcceptedOthersRefused) {
  ASSERT_TRUE(
      daemon_
          .Start({"--log_level=debug", "--listen=127.0.0.1:" + port_, "--tls_cert=" + Cert(),
                  "--tls_key=" + Key(), "--auth_tokens=" + Tokens()})
          .ok())
      << daemon_.ReadLog();
  absl::StatusOr<v1::GetInfoResponse> info = Client(token_)->GetInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->pid(), daemon_.pid());
  EXPECT_TRUE(Client(token_)->ListKernels().ok());

  EXPECT_EQ(Client("")->GetInfo().status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Client(std::string(64, 'a'))->ListKernels().status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Client(token_ + "0")->GetInfo().status().code(), absl::StatusCode::kPermissionDenied);

  // anectl with --tls-ca and --token-file (the daemon's "NAME TOKEN" file works as is).
  RunResult ok = daemon_.Anectl(
      {"--host", "localhost:" + port_, "--tls-ca", Cert(), "--token-file", Tokens(), "status"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  RunResult plain =
      daemon_.Anectl({"--host", "127.0.0.1:" + port_, "--token-file", Tokens(), "status"});
  EXPECT_NE(plain.exit_code, 0) << "plain text is not spoken on a TLS port";
  // The Unix socket needs no token.
  EXPECT_EQ(daemon_.Anectl({"kernel", "ls"}).exit_code, 0);

  ::usleep(1200 * 1000);  // log flush
  const std::string log = testing::ReadFile(daemon_.state_dir() + "/logs/anerd.log");
  EXPECT_THAT(log, HasSubstr("peer=ipv4:127.0.0.1"));
  EXPECT_THAT(log, Not(HasSubstr(token_)));
  EXPECT_THAT(log, Not(HasSubstr(std::string(64, 'a'))));
}

// Calls GetInfo over TLS presenting `cert`/`key` (both empty = no client certificate).
grpc::Status GetInfoWithClientCert(const std::string& port, const std::string& server_ca,
                                   const std::string& cert, const std::string& key,
                                   const std::string& token) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = testing::ReadFile(server_ca);
  if (!cert.empty()) {
    ssl.pem_cert_chain = testing::ReadFile(cert);
    ssl.pem_private_key = testing::ReadFile(key);
  }
  auto stub =
      v1::Anerd::NewStub(grpc::CreateChannel("localhost:" + port, grpc::SslCredentials(ssl)));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  v1::GetInfoResponse response;
  return stub->GetInfo(&context, v1::GetInfoRequest(), &response);
}

TEST_F(RemoteTest, MutualTlsAcceptsOnlyClientCertificatesSignedByTheClientCa) {
  const std::string d = dir_.path();
  // A client CA, a client certificate it signs, and a self-signed impostor.
  const std::vector<std::vector<std::string>> commands = {
      {kOpenssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/ca.key", "-out",
       d + "/ca.pem", "-days", "1", "-subj", "/CN=anerd test client CA"},
      {kOpenssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/client.key", "-out",
       d + "/client.csr", "-subj", "/CN=alice"},
      {kOpenssl, "x509", "-req", "-in", d + "/client.csr", "-CA", d + "/ca.pem", "-CAkey",
       d + "/ca.key", "-CAcreateserial", "-out", d + "/client.pem", "-days", "1"},
      {kOpenssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/rogue.key",
       "-out", d + "/rogue.pem", "-days", "1", "-subj", "/CN=alice"},
  };
  for (const auto& argv : commands) {
    RunResult r = RunProgram(argv);
    ASSERT_EQ(r.exit_code, 0) << argv[1] << ": " << r.err;
  }
  ASSERT_TRUE(
      daemon_
          .Start({"--listen=127.0.0.1:" + port_, "--tls_cert=" + Cert(), "--tls_key=" + Key(),
                  "--tls_client_ca=" + d + "/ca.pem", "--auth_tokens=" + Tokens()})
          .ok())
      << daemon_.ReadLog();
  grpc::Status ok =
      GetInfoWithClientCert(port_, Cert(), d + "/client.pem", d + "/client.key", token_);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  grpc::Status no_cert = GetInfoWithClientCert(port_, Cert(), "", "", token_);
  EXPECT_EQ(no_cert.error_code(), grpc::StatusCode::UNAVAILABLE) << no_cert.error_message();
  grpc::Status rogue =
      GetInfoWithClientCert(port_, Cert(), d + "/rogue.pem", d + "/rogue.key", token_);
  EXPECT_EQ(rogue.error_code(), grpc::StatusCode::UNAVAILABLE) << rogue.error_message();
  // The certificate does not replace the token.
  grpc::Status no_token =
      GetInfoWithClientCert(port_, Cert(), d + "/client.pem", d + "/client.key", "");
  EXPECT_EQ(no_token.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(RemoteTest, StartRefusalsNameTheMissingFlag) {
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  } cases[] = {
      {{"--listen=0.0.0.0:" + port_}, "--tls_cert"},
      {{"--listen=0.0.0.0:" + port_, "--insecure_loopback"}, "not a loopback address"},
      {{"--listen=0.0.0.0:" + port_, "--tls_cert=" + Cert(), "--tls_key=" + Key()},
       "--auth_tokens"},
      {{"--listen=0.0.0.0:" + port_, "--tls_cert=" + Cert(), "--auth_tokens=" + Tokens()},
       "--tls_cert needs --tls_key"},
      {{"--listen=127.0.0.1:" + port_}, "--insecure_loopback"},
      {{"--tls_cert=" + Cert(), "--tls_key=" + Key()}, "--listen"},
      {{"--listen=0.0.0.0:" + port_, "--tls_cert=" + Cert(), "--tls_key=" + Key(),
        "--auth_tokens=" + dir_.path() + "/none"},
       "cannot read --auth_tokens"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {testing::AnerdBinary(), "--socket=" + dir_.path() + "/x.sock",
                                     "--state_dir=" + dir_.path() + "/state"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    RunResult r = RunProgram(argv);
    EXPECT_EQ(r.exit_code, 1) << c.message;
    EXPECT_THAT(r.err, HasSubstr(c.message));
  }
}

TEST_F(RemoteTest, TokenCreateAppendsUniqueNamedTokens) {
  RunResult bob = daemon_.Anectl({"token", "create", "bob", "--file", Tokens()});
  ASSERT_EQ(bob.exit_code, 0) << bob.err;
  const std::string file = testing::ReadFile(Tokens());
  EXPECT_THAT(file, HasSubstr("alice " + token_ + "\n"));
  EXPECT_THAT(file, HasSubstr("bob " + bob.out.substr(0, 64) + "\n"));
  EXPECT_NE(bob.out.substr(0, 64), token_);
  RunResult again = daemon_.Anectl({"token", "create", "bob", "--file", Tokens()});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("already exists"));
}

}  // namespace
}  // namespace anerd
