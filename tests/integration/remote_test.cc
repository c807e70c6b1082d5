// Remote access through the real daemon: TLS + bearer tokens accepted, missing/wrong tokens refused
// with UNAUTHENTICATED/PERMISSION_DENIED (on TLS and plain loopback ports alike), tokens never
// logged, start-up refusals naming the missing flag (--auth-tokens for every --listen), mutual TLS
// from gRPC, anectl (--tls-cert/--tls-key) and the Python client, and anectl token create. The
// certificates are made at test time with the openssl CLI.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

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
using testing::FreeLoopbackPort;
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
    port_ = std::to_string(FreeLoopbackPort());
  }

  std::string Tokens() const { return dir_.path() + "/tokens"; }
  std::string Cert() const { return dir_.path() + "/cert.pem"; }
  std::string Key() const { return dir_.path() + "/key.pem"; }

  // A client CA (ca.pem), a client certificate it signs (client.pem/.key) and a self-signed
  // impostor with the same subject (rogue.pem/.key), in the test's directory.
  void MakeClientCertificates() {
    const std::string d = dir_.path();
    const std::vector<std::vector<std::string>> commands = {
        {kOpenssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/ca.key",
         "-out", d + "/ca.pem", "-days", "1", "-subj", "/CN=anerd test client CA"},
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
  }

  // Starts the daemon with TLS on the loopback port, requiring client certificates from ca.pem.
  absl::Status StartMutualTls() {
    return daemon_.Start({"--listen=127.0.0.1:" + port_, "--tls-cert=" + Cert(),
                          "--tls-key=" + Key(), "--tls-client-ca=" + dir_.path() + "/ca.pem",
                          "--auth-tokens=" + Tokens()});
  }

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
          .Start({"--log-level=debug", "--listen=127.0.0.1:" + port_, "--tls-cert=" + Cert(),
                  "--tls-key=" + Key(), "--auth-tokens=" + Tokens()})
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
  ASSERT_NO_FATAL_FAILURE(MakeClientCertificates());
  ASSERT_TRUE(StartMutualTls().ok()) << daemon_.ReadLog();
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

TEST_F(RemoteTest, AnectlPresentsAClientCertificateWithTlsCertAndTlsKey) {
  const std::string d = dir_.path();
  ASSERT_NO_FATAL_FAILURE(MakeClientCertificates());
  ASSERT_TRUE(StartMutualTls().ok()) << daemon_.ReadLog();
  auto anectl = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {
        "--host", "localhost:" + port_, "--tls-ca", Cert(), "--token-file",
        Tokens(), "--timeout",          "10"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return daemon_.Anectl(argv);
  };
  RunResult ok =
      anectl({"--tls-cert", d + "/client.pem", "--tls-key", d + "/client.key", "status", "--json"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("\"health\": \"SERVING\""));
  RunResult listed = anectl({"kernel", "ls", "--tls-cert=" + d + "/client.pem",
                             "--tls-key=" + d + "/client.key"});  // flags anywhere, '=' form
  EXPECT_EQ(listed.exit_code, 0) << listed.err;

  RunResult no_cert = anectl({"status"});
  EXPECT_EQ(no_cert.exit_code, 3) << no_cert.out;
  EXPECT_THAT(no_cert.err, HasSubstr("may require a client certificate"));
  EXPECT_THAT(no_cert.err, HasSubstr("pass --tls-cert and --tls-key"));
  RunResult rogue =
      anectl({"--tls-cert", d + "/rogue.pem", "--tls-key", d + "/rogue.key", "status"});
  EXPECT_EQ(rogue.exit_code, 3) << rogue.out;
  EXPECT_THAT(rogue.err, HasSubstr("refused the client certificate"));
  RunResult half = anectl({"--tls-cert", d + "/client.pem", "status"});
  EXPECT_EQ(half.exit_code, 1);
  EXPECT_THAT(half.err, HasSubstr("--tls-cert and --tls-key go together"));
  RunResult missing =
      anectl({"--tls-cert", d + "/nothing.pem", "--tls-key", d + "/client.key", "status"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("cannot read --tls-cert " + d + "/nothing.pem"));
  RunResult no_value = daemon_.Anectl({"status", "--tls-key"});
  EXPECT_EQ(no_value.exit_code, 2);
  EXPECT_THAT(no_value.err, HasSubstr("--tls-key needs a value"));
}

TEST_F(RemoteTest, PythonExamplePresentsAClientCertificate) {
  const char* kPython = "/usr/bin/python3";
  testing::RunOptions env;
  env.extra_env = {std::string("PYTHONPATH=") + ANERD_BINARY_DIR +
                   "/client/python/gen:" + ANERD_SOURCE_DIR + "/client/python"};
  env.timeout = absl::Seconds(120);
  RunResult probe = RunProgram({kPython, "-c", "import grpc, numpy, anerd_client"}, env);
  if (probe.exit_code != 0) GTEST_SKIP() << "python3 lacks grpc, numpy or the stubs: " << probe.err;
  const std::string d = dir_.path();
  ASSERT_NO_FATAL_FAILURE(MakeClientCertificates());
  ASSERT_TRUE(StartMutualTls().ok()) << daemon_.ReadLog();
  const std::string example = std::string(ANERD_SOURCE_DIR) + "/client/python/example.py";
  RunResult ok =
      RunProgram({kPython, example, "--host", "localhost:" + port_, "--token", token_, "--tls-ca",
                  Cert(), "--tls-cert", d + "/client.pem", "--tls-key", d + "/client.key"},
                 env);
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("\"max_abs_error\""));
  // Without the certificate the call fails; with half of it connect() refuses.
  RunResult refused = RunProgram(
      {kPython, "-c",
       "import sys, grpc, anerd_client\n"
       "c = anerd_client.connect(sys.argv[1], token=sys.argv[2], tls_ca=sys.argv[3], timeout=10)\n"
       "try:\n  c.info()\nexcept grpc.RpcError as e:\n  print(e.code().name)\n"
       "try:\n  anerd_client.connect(sys.argv[1], tls_cert=sys.argv[3])\n"
       "except ValueError as e:\n  print(e)\n",
       "localhost:" + port_, token_, Cert()},
      env);
  ASSERT_EQ(refused.exit_code, 0) << refused.err;
  EXPECT_THAT(refused.out, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(refused.out, HasSubstr("tls_cert and tls_key go together"));
}

// A plain --insecure-loopback port checks tokens too: no way around the Unix socket's uid check.
TEST_F(RemoteTest, PlainLoopbackPortRefusesMissingAndWrongTokens) {
  ASSERT_TRUE(daemon_
                  .Start({"--listen=127.0.0.1:" + port_, "--insecure-loopback",
                          "--auth-tokens=" + Tokens()})
                  .ok())
      << daemon_.ReadLog();
  auto plain = [&](const std::string& token) {
    client::ClientOptions options;
    options.endpoint = *ParseEndpoint("127.0.0.1:" + port_);
    options.bearer_token = token;
    return client::AnerdClient::Create(options);
  };
  EXPECT_TRUE(plain(token_)->GetInfo().ok());
  EXPECT_EQ(plain("")->GetInfo().status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(plain("")->ListKernels().status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(plain(std::string(64, 'b'))->GetInfo().status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(plain(token_.substr(1))->ListKernels().status().code(),
            absl::StatusCode::kPermissionDenied);

  const std::vector<std::string> host = {"--host", "127.0.0.1:" + port_};
  auto anectl = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), host.begin(), host.end());
    return daemon_.Anectl(extra);
  };
  EXPECT_EQ(anectl({"--token-file", Tokens(), "kernel", "ls"}).exit_code, 0);
  RunResult missing = anectl({"kernel", "ls"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("missing bearer token"));
  std::ofstream(dir_.path() + "/wrong") << "mallory " << std::string(64, 'c') << "\n";
  RunResult wrong = anectl({"--token-file", dir_.path() + "/wrong", "kernel", "ls"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err, HasSubstr("bearer token not accepted"));
  EXPECT_THAT(wrong.err, Not(HasSubstr(std::string(64, 'c'))));
  RunResult tls = anectl({"--token-file", Tokens(), "--tls-ca", Cert(), "status"});
  EXPECT_EQ(tls.exit_code, 3);
  EXPECT_THAT(tls.err, HasSubstr("does not speak TLS"));
}

TEST_F(RemoteTest, StartRefusalsNameTheMissingFlag) {
  const std::string tokens_hint = "--auth-tokens FILE";
  const std::string create_hint = "anectl token create NAME --file FILE";
  struct Case {
    std::vector<std::string> flags;
    std::vector<std::string> messages;
  } cases[] = {
      {{"--listen=0.0.0.0:" + port_}, {"--tls-cert", tokens_hint, create_hint}},
      {{"--listen=0.0.0.0:" + port_, "--insecure-loopback"},
       {"not a loopback address", "--tls-cert", tokens_hint}},
      {{"--listen=0.0.0.0:" + port_, "--tls-cert=" + Cert(), "--tls-key=" + Key()},
       {tokens_hint, create_hint}},
      {{"--listen=0.0.0.0:" + port_, "--tls-cert=" + Cert(), "--auth-tokens=" + Tokens()},
       {"--tls-cert needs --tls-key"}},
      {{"--listen=127.0.0.1:" + port_}, {"--insecure-loopback", tokens_hint}},
      // Loopback is no exception: plain or TLS, a TCP port needs tokens.
      {{"--listen=127.0.0.1:" + port_, "--insecure-loopback"}, {tokens_hint, create_hint}},
      {{"--listen=localhost:" + port_, "--tls-cert=" + Cert(), "--tls-key=" + Key()},
       {tokens_hint, create_hint}},
      {{"--listen=127.0.0.1:" + port_, "--auth-tokens=" + Tokens()}, {"--insecure-loopback"}},
      {{"--tls-cert=" + Cert(), "--tls-key=" + Key()}, {"--listen"}},
      {{"--auth-tokens=" + Tokens()}, {"--listen"}},
      {{"--listen=0.0.0.0:" + port_, "--tls-cert=" + Cert(), "--tls-key=" + Key(),
        "--auth-tokens=" + dir_.path() + "/none"},
       {"cannot read --auth-tokens"}},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {testing::AnerdBinary(), "--socket=" + dir_.path() + "/x.sock",
                                     "--state-dir=" + dir_.path() + "/state"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    RunResult r = RunProgram(argv);
    EXPECT_EQ(r.exit_code, 1) << c.flags[0];
    for (const std::string& message : c.messages) {
      EXPECT_THAT(r.err, HasSubstr(message)) << c.flags.back();
    }
    if (c.messages[0] != "cannot read --auth-tokens") {
      EXPECT_NE(::access((dir_.path() + "/x.sock").c_str(), F_OK), 0) << "refused before serving";
    }
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
