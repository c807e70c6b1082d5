// Authorization through a real daemon (issue 16): on a plain loopback TCP port with three tokens —
// alice and bob (ordinary) and carol (admin) — every object (kernel, training session, probe
// result) is visible only to its owners and admins; to anyone else it is NOT_FOUND with the very
// message a missing id gets, and lists leave it out. Session owners survive a restart (persisted).
// Remote callers cannot name daemon-side files; local callers cannot reach the state dir, the
// token file or dot-files through --data-root; a request with a string field that is not UTF-8 is
// refused naming the field.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/lib/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/store/sqlite.h"
#include "tests/testing/kernel_fixtures.h"
#include "tests/testing/process_harness.h"
#include "tests/testing/token_daemon.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunResult;
using testing::TempDir;
using testing::TokenDaemon;
using Json = nlohmann::json;

class RemoteAuthzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"alice", "bob", "carol"}) {
      ASSERT_TRUE(remote_.AddToken(name, /*admin=*/std::string(name) == "carol").ok());
    }
    data_ = dir_.path() + "/stories.txt";
  }

  std::string Tokens() const { return remote_.tokens_file(); }
  absl::Status Start() { return remote_.Start(); }
  client::AnerdClient& As(const std::string& name) { return remote_.As(name); }
  static absl::StatusOr<std::string> Compile(client::AnerdClient& c, double scale) {
    return TokenDaemon::CompileScaled(c, scale);
  }

  std::set<std::string> KernelIds(client::AnerdClient& c) {
    std::set<std::string> ids;
    absl::StatusOr<v1::ListKernelsResponse> r = c.ListKernels();
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) {
      for (const v1::KernelInfo& k : r->kernels()) ids.insert(k.id());
    }
    return ids;
  }

  // A completed 3-step session started over the Unix socket.
  std::string TrainLocally() {
    if (::access(data_.c_str(), F_OK) != 0) {
      RunResult synth = daemon_.Anectl({"data", "synth", "--out", data_, "--bytes", "100000"});
      EXPECT_EQ(synth.exit_code, 0) << synth.err;
    }
    RunResult start = daemon_.Anectl({"train", "start", "--data", data_, "--steps", "3", "--json"});
    EXPECT_EQ(start.exit_code, 0) << start.err;
    if (start.exit_code != 0) return "";
    const std::string id = Json::parse(start.out)["session"]["id"];
    RunResult watch = daemon_.Anectl({"--timeout", "120", "train", "watch", id, "--json"});
    EXPECT_EQ(watch.exit_code, 0) << watch.err;
    return id;
  }

  std::set<std::string> SessionIds(client::AnerdClient& c) {
    v1::ListSessionsResponse all;
    auto context = c.NewContext();
    EXPECT_TRUE(c.stub()->ListSessions(context.get(), {}, &all).ok());
    std::set<std::string> ids;
    for (const v1::SessionInfo& s : all.sessions()) ids.insert(s.id());
    return ids;
  }

  // Every call a client can make on session `id` (but delete; stop and resume only when `mutate`),
  // with the status each returned.
  std::map<std::string, grpc::Status> TouchSession(client::AnerdClient& c, const std::string& id,
                                                   bool mutate = true) {
    std::map<std::string, grpc::Status> out;
    {
      v1::GetSessionRequest r;
      r.set_session_id(id);
      v1::SessionInfo info;
      out["get"] = c.stub()->GetSession(c.NewContext().get(), r, &info);
    }
    {
      auto context = c.NewContext();
      v1::WatchSessionRequest r;
      r.set_session_id(id);
      auto reader = c.stub()->WatchSession(context.get(), r);
      v1::SessionEvent event;
      while (reader->Read(&event)) {
      }
      out["watch"] = reader->Finish();
    }
    {
      auto context = c.NewContext();
      v1::ExportModelRequest r;
      r.set_session_id(id);
      auto reader = c.stub()->ExportModel(context.get(), r);
      v1::ExportModelChunk chunk;
      while (reader->Read(&chunk)) {
      }
      out["export"] = reader->Finish();
    }
    {
      v1::EvaluateRequest r;  // issue 20 item 4: the session's latest checkpoint
      r.set_session_id(id);
      r.set_batches(1);
      v1::EvaluateResponse response;
      out["evaluate"] = c.stub()->Evaluate(c.NewContext(absl::Seconds(60)).get(), r, &response);
    }
    if (!mutate) return out;
    {
      v1::StopSessionRequest r;
      r.set_session_id(id);
      v1::SessionInfo info;
      out["stop"] = c.stub()->StopSession(c.NewContext().get(), r, &info);
    }
    {
      v1::ResumeSessionRequest r;
      r.set_session_id(id);
      r.set_extra_steps(1);
      v1::SessionInfo info;
      out["resume"] = c.stub()->ResumeSession(c.NewContext().get(), r, &info);
    }
    return out;
  }

  grpc::Status DeleteSession(client::AnerdClient& c, const std::string& id) {
    v1::DeleteSessionRequest r;
    r.set_session_id(id);
    v1::DeleteSessionResponse out;
    return c.stub()->DeleteSession(c.NewContext().get(), r, &out);
  }

  TempDir dir_;
  TokenDaemon remote_{dir_.path()};
  DaemonProcess& daemon_ = remote_.daemon();
  std::string data_;
};

// The NOT_FOUND `status` must read exactly like the one for a missing id: `missing` with the
// missing id replaced by `id`.
void ExpectLooksMissing(const absl::Status& status, const absl::Status& missing,
                        const std::string& missing_id, const std::string& id) {
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_EQ(status.message(), absl::StrReplaceAll(missing.message(), {{missing_id, id}}));
}

TEST_F(RemoteAuthzTest, TokenLinesTakeOnlyTheAdminFlagAsAThirdField) {
  std::ofstream(Tokens(), std::ios::app) << "dave " << std::string(64, 'd') << " root\n";
  absl::Status started = Start();
  EXPECT_FALSE(started.ok());
  EXPECT_THAT(daemon_.ReadLog(), HasSubstr("line 4: want 'NAME TOKEN' or 'NAME TOKEN admin'"));
  EXPECT_THAT(testing::ReadFile(Tokens()),
              HasSubstr("carol " + remote_.token("carol") + " admin\n"));
  EXPECT_THAT(testing::ReadFile(Tokens()), HasSubstr("alice " + remote_.token("alice") + "\n"));
}

TEST_F(RemoteAuthzTest, KernelsAreSeenAndTouchedOnlyByTheirOwnersAndAdmins) {
  ASSERT_TRUE(Start().ok()) << daemon_.ReadLog();
  client::AnerdClient& alice = As("alice");
  client::AnerdClient& bob = As("bob");
  client::AnerdClient& carol = As("carol");
  absl::StatusOr<std::string> shared = Compile(alice, 1.0);
  ASSERT_TRUE(shared.ok()) << shared.status();
  absl::StatusOr<std::string> own = Compile(alice, 2.0);
  ASSERT_TRUE(own.ok()) << own.status();

  const std::string missing_id(64, 'e');
  const absl::Status missing = bob.GetKernel(missing_id).status();
  ASSERT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(KernelIds(bob).empty());
  EXPECT_EQ(KernelIds(alice), (std::set<std::string>{*shared, *own}));
  ExpectLooksMissing(bob.GetKernel(*own).status(), missing, missing_id, *own);
  v1::EvalKernelRequest eval;
  eval.set_kernel_id(*own);
  ExpectLooksMissing(bob.EvalKernel(eval).status(), missing, missing_id, *own);
  ExpectLooksMissing(bob.DeleteKernel(*own), missing, missing_id, *own);
  EXPECT_TRUE(alice.GetKernel(*own).ok()) << "bob's delete did nothing";

  // An admin token sees and manages everything; so does the daemon's own user on the socket.
  EXPECT_EQ(KernelIds(carol), (std::set<std::string>{*shared, *own}));
  EXPECT_TRUE(carol.GetKernel(*own).ok());
  RunResult local = daemon_.Anectl({"kernel", "ls", "--json"});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  EXPECT_THAT(local.out, HasSubstr(*own));

  // Content-addressed: bob compiling the same program owns it too; each delete releases only the
  // caller's ownership until none is left.
  // ...without learning from the response that alice had compiled it: bob's first compile reads
  // as a miss with the recorded compile time, his second as his own hit.
  v1::CompileKernelHeader same;
  same.set_mil_text(testing::ScaleMilText(8, 1.0));
  absl::StatusOr<v1::CompileKernelResponse> first = bob.CompileKernel(same, {});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->kernel().id(), *shared);
  EXPECT_FALSE(first->cache_hit());
  EXPECT_GT(first->compile_ms(), 0);
  absl::StatusOr<v1::CompileKernelResponse> again = bob.CompileKernel(same, {});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->cache_hit());
  EXPECT_EQ(KernelIds(bob), (std::set<std::string>{*shared}));
  ASSERT_TRUE(alice.DeleteKernel(*shared).ok());
  ExpectLooksMissing(alice.GetKernel(*shared).status(), missing, missing_id, *shared);
  EXPECT_TRUE(bob.GetKernel(*shared).ok());
  ASSERT_TRUE(bob.DeleteKernel(*shared).ok());
  EXPECT_EQ(carol.GetKernel(*shared).status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(carol.DeleteKernel(*own).ok()) << "an admin deletes what only alice owns";
  EXPECT_EQ(alice.GetKernel(*own).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RemoteAuthzTest, SessionsAreSeenAndTouchedOnlyByTheirOwnersAcrossRestarts) {
  ASSERT_TRUE(Start().ok()) << daemon_.ReadLog();
  const std::string alices = TrainLocally();
  const std::string locals = TrainLocally();
  ASSERT_FALSE(alices.empty());
  ASSERT_FALSE(locals.empty());
  absl::StatusOr<int> stopped = daemon_.Stop(SIGTERM);
  ASSERT_TRUE(stopped.ok()) << stopped.status();

  // Owners are persisted: the socket's sessions belong to uid:N; hand one to alice.
  {
    absl::StatusOr<std::unique_ptr<store::SqliteDb>> db =
        store::SqliteDb::Open(daemon_.state_dir() + "/anerd.db", 5000);
    ASSERT_TRUE(db.ok()) << db.status();
    auto owner_of = [&](const std::string& id) {
      auto q = store::Statement::Prepare((*db)->get(), "SELECT owner FROM sessions WHERE id = ?");
      EXPECT_TRUE(q.ok()) << q.status();
      if (!q.ok()) return std::string("?");
      (*q)->BindText(1, id);
      absl::StatusOr<bool> row = (*q)->Step();
      return row.ok() && *row ? (*q)->ColumnText(0) : std::string("?");
    };
    EXPECT_EQ(owner_of(locals), absl::StrCat("uid:", ::getuid()));
    ASSERT_TRUE(
        (*db)->Exec("UPDATE sessions SET owner = 'token:alice' WHERE id = '" + alices + "'").ok());
  }
  ASSERT_TRUE(Start().ok()) << daemon_.ReadLog();
  client::AnerdClient& alice = As("alice");
  client::AnerdClient& bob = As("bob");
  client::AnerdClient& carol = As("carol");

  EXPECT_EQ(SessionIds(alice), (std::set<std::string>{alices}));
  EXPECT_TRUE(SessionIds(bob).empty());
  EXPECT_EQ(SessionIds(carol), (std::set<std::string>{alices, locals}));
  std::map<std::string, grpc::Status> own = TouchSession(alice, alices, /*mutate=*/false);
  EXPECT_TRUE(own["get"].ok()) << own["get"].error_message();
  EXPECT_TRUE(own["watch"].ok()) << own["watch"].error_message();
  EXPECT_TRUE(own["export"].ok()) << own["export"].error_message();
  EXPECT_TRUE(own["evaluate"].ok()) << own["evaluate"].error_message();

  const std::string missing_id = "0123456789ab";
  const grpc::Status missing = TouchSession(bob, missing_id)["get"];
  ASSERT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  const std::string want = absl::StrReplaceAll(missing.error_message(), {{missing_id, alices}});
  for (const auto& [call, status] : TouchSession(bob, alices)) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << "bob " << call;
    EXPECT_EQ(status.error_message(), want) << "bob " << call;
  }
  EXPECT_EQ(DeleteSession(bob, alices).error_message(), want);
  for (const auto& [call, status] : TouchSession(alice, locals)) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << "alice " << call;
  }
  for (const auto& [call, status] : TouchSession(carol, locals, /*mutate=*/false)) {
    EXPECT_TRUE(status.ok()) << "an admin sees every session: " << call << " "
                             << status.error_message();
  }

  // The owner (not bob) may delete; the socket still sees the rest.
  ASSERT_TRUE(DeleteSession(alice, alices).ok());
  RunResult ls = daemon_.Anectl({"train", "ls", "--json"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_THAT(ls.out, HasSubstr(locals));
}

// Issue 16 item 4: who started a session is shown to admins (SessionInfo.owner; `anectl train ls`
// adds an OWNER column, `show` an owner line) and to nobody else: an ordinary token sees only its
// own sessions anyway, and not even its own identity comes back.
TEST_F(RemoteAuthzTest, SessionOwnersAreShownToAdminsOnly) {
  ASSERT_TRUE(Start().ok()) << daemon_.ReadLog();
  const std::string alices = TrainLocally();
  const std::string locals = TrainLocally();
  ASSERT_FALSE(alices.empty());
  ASSERT_FALSE(locals.empty());
  ASSERT_EQ(*daemon_.Stop(SIGTERM), 0);
  {
    absl::StatusOr<std::unique_ptr<store::SqliteDb>> db =
        store::SqliteDb::Open(daemon_.state_dir() + "/anerd.db", 5000);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE(
        (*db)->Exec("UPDATE sessions SET owner = 'token:alice' WHERE id = '" + alices + "'").ok());
  }
  ASSERT_TRUE(Start().ok()) << daemon_.ReadLog();
  const std::string uid = absl::StrCat("uid:", ::getuid());
  auto owners = [](client::AnerdClient& c) {
    std::map<std::string, std::string> out;
    v1::ListSessionsResponse all;
    auto context = c.NewContext();
    EXPECT_TRUE(c.stub()->ListSessions(context.get(), {}, &all).ok());
    for (const v1::SessionInfo& s : all.sessions()) out[s.id()] = s.owner();
    return out;
  };
  auto get_owner = [](client::AnerdClient& c, const std::string& id) {
    v1::GetSessionRequest r;
    r.set_session_id(id);
    v1::SessionInfo info;
    EXPECT_TRUE(c.stub()->GetSession(c.NewContext().get(), r, &info).ok());
    return info.owner();
  };
  EXPECT_EQ(owners(As("carol")),
            (std::map<std::string, std::string>{{alices, "token:alice"}, {locals, uid}}));
  EXPECT_EQ(get_owner(As("carol"), alices), "token:alice");
  EXPECT_EQ(owners(As("alice")), (std::map<std::string, std::string>{{alices, ""}}));
  EXPECT_EQ(get_owner(As("alice"), alices), "");

  RunResult admin_ls = remote_.Anectl("carol", {"train", "ls"});
  ASSERT_EQ(admin_ls.exit_code, 0) << admin_ls.err;
  EXPECT_THAT(admin_ls.out, HasSubstr("OWNER"));
  EXPECT_THAT(admin_ls.out, HasSubstr("token:alice"));
  EXPECT_THAT(remote_.Anectl("carol", {"train", "show", alices}).out, HasSubstr("token:alice"));
  RunResult socket_json = daemon_.Anectl({"train", "show", locals, "--json"});
  EXPECT_EQ(Json::parse(socket_json.out)["session"].value("owner", ""), uid);
  RunResult own_ls = remote_.Anectl("alice", {"train", "ls", "--json"});
  ASSERT_EQ(own_ls.exit_code, 0) << own_ls.err;
  EXPECT_THAT(own_ls.out, HasSubstr(alices));
  EXPECT_THAT(own_ls.out, ::testing::Not(HasSubstr("owner")));
  EXPECT_THAT(remote_.Anectl("alice", {"train", "ls"}).out, ::testing::Not(HasSubstr("OWNER")));
}

TEST_F(RemoteAuthzTest, ProbeResultsAreSeenOnlyByTheirOwnersAndAdmins) {
  ASSERT_TRUE(Start().ok()) << daemon_.ReadLog();
  client::AnerdClient& alice = As("alice");
  v1::RunProbeRequest run;
  run.set_probe("latency");
  v1::ProbeGridPoint* point = run.add_grid();
  point->set_channels(16);
  point->set_spatial(4);
  point->set_depth(1);
  run.set_repeat(2);
  std::string id;
  {
    auto context = alice.NewContext(absl::Seconds(120));
    auto reader = alice.stub()->RunProbe(context.get(), run);
    v1::RunProbeResponse message;
    while (reader->Read(&message)) {
      if (message.has_started()) id = message.started().result_id();
    }
    grpc::Status status = reader->Finish();
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_FALSE(id.empty());

  auto list = [&](client::AnerdClient& c) {
    v1::ListProbeResultsResponse response;
    EXPECT_TRUE(c.stub()->ListProbeResults(c.NewContext().get(), {}, &response).ok());
    std::set<std::string> ids;
    for (const v1::ProbeSummary& r : response.results()) ids.insert(r.result_id());
    return ids;
  };
  auto get = [&](client::AnerdClient& c, const std::string& result_id) {
    v1::GetProbeResultRequest request;
    request.set_result_id(result_id);
    v1::ProbeResult result;
    return c.stub()->GetProbeResult(c.NewContext().get(), request, &result);
  };
  EXPECT_EQ(list(alice), (std::set<std::string>{id}));
  EXPECT_TRUE(get(alice, id).ok());
  EXPECT_TRUE(list(As("bob")).empty());
  const std::string missing_id = "20000101-000000-0000";
  const grpc::Status missing = get(As("bob"), missing_id);
  ASSERT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  const grpc::Status hidden = get(As("bob"), id);
  EXPECT_EQ(hidden.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(hidden.error_message(),
            absl::StrReplaceAll(missing.error_message(), {{missing_id, id}}));
  EXPECT_EQ(list(As("carol")), (std::set<std::string>{id}));
  RunResult local = daemon_.Anectl({"probe", "ls", "--json"});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  EXPECT_THAT(local.out, HasSubstr(id));
}

TEST_F(RemoteAuthzTest, RemoteCallersCannotNameDaemonSidePaths) {
  ASSERT_TRUE(Start().ok()) << daemon_.ReadLog();
  RunResult synth = daemon_.Anectl({"data", "synth", "--out", data_, "--bytes", "100000"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  for (const char* who : {"alice", "carol"}) {  // admins too: the rule is about where they are
    for (const char* field : {"data", "init"}) {
      v1::StartTrainingRequest request;
      request.mutable_spec()->set_data(data_);  // init is checked first
      if (field == std::string("init")) request.mutable_spec()->set_init(Tokens());
      request.mutable_spec()->set_steps(3);
      v1::SessionInfo info;
      client::AnerdClient& c = As(who);
      grpc::Status status = c.stub()->StartTraining(c.NewContext().get(), request, &info);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << who << " " << field;
      EXPECT_THAT(status.error_message(), HasSubstr(std::string(field) + ": remote (TCP)"));
      EXPECT_THAT(status.error_message(), HasSubstr("must upload"));
    }
  }
  EXPECT_TRUE(SessionIds(As("carol")).empty());
  // Nor are they told where the daemon keeps its state.
  absl::StatusOr<v1::GetInfoResponse> info = As("alice").GetInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->state_dir(), "");
  EXPECT_EQ(info->socket(), "");
  EXPECT_EQ(As("carol").GetInfo()->state_dir(), daemon_.state_dir()) << "admins are";
  // Nor the daemon-wide cache counters, which tell of other clients' kernels.
  EXPECT_FALSE(info->has_cache());
  EXPECT_TRUE(As("carol").GetInfo()->has_cache());
  RunResult status = remote_.Anectl("alice", {"status", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_FALSE(Json::parse(status.out).contains("cache")) << status.out;
  RunResult anectl =
      remote_.Anectl("alice", {"train", "start", "--data", data_, "--steps", "3", "--no-upload"});
  EXPECT_NE(anectl.exit_code, 0);
  EXPECT_THAT(anectl.err, HasSubstr("must upload"));
}

TEST_F(RemoteAuthzTest, DataRootNeverReachesTheStateDirTheTokenFileOrDotFiles) {
  // The harness's data root is the test directory, which holds the state dir and the token file.
  ASSERT_TRUE(Start().ok()) << daemon_.ReadLog();
  RunResult synth = daemon_.Anectl({"data", "synth", "--out", data_, "--bytes", "100000"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  const std::string d = dir_.path();
  ASSERT_EQ(::mkdir((d + "/.hidden").c_str(), 0700), 0);
  std::ofstream(d + "/.hidden/stories.txt") << testing::ReadFile(data_);
  std::ofstream(d + "/.secret.txt") << testing::ReadFile(data_);
  ASSERT_EQ(::symlink((d + "/.secret.txt").c_str(), (d + "/innocent.txt").c_str()), 0);
  ASSERT_EQ(::symlink(Tokens().c_str(), (d + "/tokens.txt").c_str()), 0);
  std::ofstream(daemon_.state_dir() + "/stories.txt") << testing::ReadFile(data_);

  const std::pair<std::string, std::string> refused[] = {
      {daemon_.state_dir() + "/anerd.db", "state dir"},
      {daemon_.state_dir() + "/stories.txt", "state dir"},
      {daemon_.state_dir() + "/../state/logs/anerd.log", "state dir"},
      {Tokens(), "secret"},
      {d + "/tokens.txt", "secret"},
      {d + "/.secret.txt", "dot-"},
      {d + "/innocent.txt", "dot-"},
      {d + "/.hidden/stories.txt", "dot-"},
  };
  for (const auto& [path, why] : refused) {
    RunResult r = daemon_.Anectl({"train", "start", "--data", path, "--steps", "3"});
    EXPECT_NE(r.exit_code, 0) << path;
    EXPECT_THAT(r.err, HasSubstr(why)) << path;
    RunResult init =
        daemon_.Anectl({"train", "start", "--data", data_, "--init", path, "--steps", "3"});
    EXPECT_NE(init.exit_code, 0) << path;
    EXPECT_THAT(init.err, HasSubstr(why)) << path;
  }
  RunResult ok = daemon_.Anectl({"train", "start", "--data", data_, "--steps", "3", "--json"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

TEST_F(RemoteAuthzTest, StringFieldsThatAreNotUtf8AreNamed) {
  ASSERT_TRUE(daemon_.Start().ok()) << daemon_.ReadLog();
  client::ClientOptions options;
  options.endpoint = *ParseEndpoint(daemon_.host());
  std::unique_ptr<client::AnerdClient> c = client::AnerdClient::Create(options);
  const std::string bad = "k\xff\xfe";

  absl::Status unary = c->GetKernel(bad).status();
  EXPECT_EQ(unary.code(), absl::StatusCode::kInvalidArgument) << unary;
  EXPECT_THAT(unary.message(), HasSubstr("anerd.v1.GetKernelRequest.kernel_id"));
  EXPECT_THAT(unary.message(), HasSubstr("not valid UTF-8"));

  v1::CompileKernelHeader header;
  header.set_mil_text(testing::ScaleMilText(8, 1.0));
  header.set_name(bad);
  absl::Status stream = c->CompileKernel(header, {}).status();
  EXPECT_EQ(stream.code(), absl::StatusCode::kInvalidArgument) << stream;
  EXPECT_THAT(stream.message(), HasSubstr("anerd.v1.CompileKernelHeader.name"));

  RunResult cli = daemon_.Anectl({"train", "start", "--data", data_, "--name", bad});
  EXPECT_NE(cli.exit_code, 0);
  EXPECT_THAT(cli.err, HasSubstr("anerd.v1.TrainingSpec.name is not valid UTF-8"));
  EXPECT_TRUE(c->GetInfo().ok()) << "the daemon is still up";
}

}  // namespace
}  // namespace anerd
