#include "common/paths.h"

#include <cstdlib>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd {
namespace {

using ::testing::HasSubstr;

TEST(EndpointTest, ParsesTheSpelledForms) {
  absl::StatusOr<Endpoint> unix_ep = ParseEndpoint("unix:/run/x.sock");
  ASSERT_TRUE(unix_ep.ok());
  EXPECT_TRUE(unix_ep->is_unix);
  EXPECT_EQ(unix_ep->path, "/run/x.sock");
  EXPECT_EQ(unix_ep->GrpcTarget(), "unix:/run/x.sock");

  absl::StatusOr<Endpoint> bare = ParseEndpoint("/tmp/a/b.sock");
  ASSERT_TRUE(bare.ok());
  EXPECT_TRUE(bare->is_unix);

  absl::StatusOr<Endpoint> tcp = ParseEndpoint("127.0.0.1:7070");
  ASSERT_TRUE(tcp.ok());
  EXPECT_FALSE(tcp->is_unix);
  EXPECT_EQ(tcp->GrpcTarget(), "127.0.0.1:7070");
  EXPECT_TRUE(ParseEndpoint("[::1]:9000").ok());
}

TEST(EndpointTest, RejectsMalformedWithAReason) {
  EXPECT_THAT(ParseEndpoint("").status().message(), HasSubstr("empty"));
  EXPECT_THAT(ParseEndpoint("unix:").status().message(), HasSubstr("no path"));
  EXPECT_THAT(ParseEndpoint("localhost").status().message(), HasSubstr("HOST:PORT"));
  EXPECT_THAT(ParseEndpoint("localhost:99999").status().message(), HasSubstr("port"));
  EXPECT_THAT(ParseEndpoint("localhost:abc").status().message(), HasSubstr("port"));
}

TEST(EndpointTest, ClientResolutionPrefersFlagThenEnvironment) {
  ::setenv("ANERD_HOST", "unix:/from/env.sock", 1);
  EXPECT_EQ(ResolveClientEndpoint("unix:/from/flag.sock")->path, "/from/flag.sock");
  EXPECT_EQ(ResolveClientEndpoint("")->path, "/from/env.sock");
  ::unsetenv("ANERD_HOST");
  ::setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
  EXPECT_EQ(ResolveClientEndpoint("")->path, "/run/user/4242/anerd/anerd.sock");
  ::unsetenv("XDG_RUNTIME_DIR");
  ::setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(ResolveClientEndpoint("")->path, "/home/someone/.local/state/anerd/anerd.sock");
}

TEST(PathsTest, StateDirFollowsXdgStateHome) {
  ::setenv("XDG_STATE_HOME", "/xdg/state", 1);
  EXPECT_EQ(DefaultStateDir(), "/xdg/state/anerd");
  ::unsetenv("XDG_STATE_HOME");
  ::setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(DefaultStateDir(), "/home/someone/.local/state/anerd");
  EXPECT_EQ(DefaultLogDir("/s"), "/s/logs");
}

}  // namespace
}  // namespace anerd
