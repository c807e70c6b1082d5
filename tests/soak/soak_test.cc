// Soak tests (`make soak`, not part of `make test`): the daemon survives repeated kill -9 during
// training with every step logged exactly once, and a sustained load of many concurrent clients
// leaves its threads, file descriptors and memory back at their baseline.
//
// Knobs (environment): ANERD_SOAK_KILLS (default 10), ANERD_SOAK_CLIENTS (default 64),
// ANERD_SOAK_SECONDS (default 60). Figures are printed as "[soak] ..." lines for the notes.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "client/lib/client.h"
#include "common/paths.h"
#include "gtest/gtest.h"
#include "tests/testing/kernel_fixtures.h"
#include "tests/testing/process_harness.h"
#include "tests/testing/session_fixture.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using testing::SessionFixture;

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  int parsed = 0;
  return value != nullptr && absl::SimpleAtoi(value, &parsed) && parsed > 0 ? parsed : fallback;
}

// Resource use of a live process, read from /proc (Linux only).
struct ProcessUse {
  int64_t rss_kb = -1;
  int64_t threads = -1;
  int64_t fds = -1;
};

ProcessUse ReadUse(pid_t pid) {
  ProcessUse use;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    int64_t value = 0;
    if (line.rfind("VmRSS:", 0) == 0 && absl::SimpleAtoi(line.substr(6, line.size() - 9), &value)) {
      use.rss_kb = value;
    }
    if (line.rfind("Threads:", 0) == 0 && absl::SimpleAtoi(line.substr(8), &value)) {
      use.threads = value;
    }
  }
  if (DIR* dir = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str())) {
    use.fds = 0;
    while (dirent* entry = readdir(dir)) use.fds += entry->d_name[0] != '.';
    closedir(dir);
  }
  return use;
}

class SoakTest : public SessionFixture {};

// kill -9 the daemon repeatedly while a session trains; every restart resumes it from its last
// checkpoint, and in the end its log holds every step exactly once.
TEST_F(SoakTest, RepeatedKillNineMidTrainingLosesNoStep) {
  const int kills = EnvInt("ANERD_SOAK_KILLS", 10);
  // Each round runs 25+ steps (more on a fast machine); leave room so the last kill still lands
  // mid-run.
  const int64_t total = 300 + 150 * kills;
  std::string id;
  int64_t last_step = 0;
  for (int round = 0; round < kills; ++round) {
    DaemonProcess d(dir_.path());
    ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
    if (round == 0) {
      id = Start(d, {"--steps", std::to_string(total), "--checkpoint-every", "15"});
      ASSERT_FALSE(id.empty());
    }
    // Let it get past the previous kill point and at least one new checkpoint.
    WaitForStep(d, id, std::min(last_step + 25, total - 1));
    last_step = Show(d, id)["step"].get<int64_t>();
    ASSERT_EQ(*d.Stop(SIGKILL), -SIGKILL);
    std::printf("[soak] kill %d/%d at step %lld\n", round + 1, kills,
                static_cast<long long>(last_step));
  }
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  std::vector<Json> events = Events(d, id);
  ExpectEveryStepOnce(Steps(events), total);
  EXPECT_EQ(Show(d, id)["state"], "completed");
}

// A load of `clients` threads, each with its own channel, calling GetInfo, a tiny evaluation,
// ListKernels and a short WatchSession in turn until `duration` has passed.
struct LoadResult {
  int64_t calls = 0;
  int64_t failures = 0;
  std::map<std::string, int> failure_kinds;  // "CODE: message" -> count
};

LoadResult RunLoad(const client::ClientOptions& options, int clients, absl::Duration duration,
                   const std::string& kernel, const std::string& session) {
  LoadResult result;
  absl::Mutex mu;
  const absl::Time end = absl::Now() + duration;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      client::ClientOptions own = options;
      own.timeout = absl::Seconds(30);
      std::unique_ptr<client::AnerdClient> client = client::AnerdClient::Create(own);
      v1::EvalKernelRequest eval;
      eval.set_kernel_id(kernel);
      v1::Tensor* x = eval.add_inputs();
      x->set_name("x");
      x->set_dtype("fp32");
      for (int64_t dim : {1, 8, 1, 8}) x->add_shape(dim);
      x->set_data(std::string(64 * sizeof(float), '\0'));
      for (int i = 0; absl::Now() < end; ++i) {
        absl::Status status;
        switch ((i + c) % 4) {
          case 0:
            status = client->GetInfo().status();
            break;
          case 1:
            status = client->EvalKernel(eval).status();
            break;
          case 2:
            status = client->ListKernels().status();
            break;
          default: {
            v1::WatchSessionRequest watch;
            watch.set_session_id(session);
            watch.set_from_step(1);
            auto context = client->NewContext(absl::Seconds(10));
            auto reader = client->stub()->WatchSession(context.get(), watch);
            v1::SessionEvent event;
            for (int n = 0; n < 3 && reader->Read(&event); ++n) {
            }
            context->TryCancel();
            reader->Finish();
          }
        }
        absl::MutexLock lock(&mu);
        ++result.calls;
        if (!status.ok()) {
          ++result.failures;
          ++result.failure_kinds[absl::StatusCodeToString(status.code()) + ": " +
                                 std::string(status.message().substr(0, 80))];
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  return result;
}

// Waits (up to a minute) for the daemon's threads and fds to come back to `baseline`.
ProcessUse Settle(pid_t pid, const ProcessUse& baseline) {
  ProcessUse use;
  for (int i = 0; i < 60; ++i) {
    ::sleep(1);
    use = ReadUse(pid);
    if (use.threads <= baseline.threads && use.fds <= baseline.fds) break;
  }
  return use;
}

void Print(const char* label, const ProcessUse& use) {
  std::printf("[soak] %s: rss %lld kB, threads %lld, fds %lld\n", label,
              static_cast<long long>(use.rss_kb), static_cast<long long>(use.threads),
              static_cast<long long>(use.fds));
}

// Many clients at once for a while, while a session trains. A short warm-up round first lets
// gRPC's thread pools and the allocator reach their working size; then the baseline is taken, the
// full load runs, and afterwards the daemon's threads and fds must be back at that baseline and its
// RSS within a bound of it. No call may fail.
TEST_F(SoakTest, ManyClientsLeaveNoResidue) {
  const int clients = EnvInt("ANERD_SOAK_CLIENTS", 64);
  const absl::Duration duration = absl::Seconds(EnvInt("ANERD_SOAK_SECONDS", 60));
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  client::ClientOptions options;
  options.endpoint.path = d.socket();
  std::unique_ptr<client::AnerdClient> setup = client::AnerdClient::Create(options);
  v1::CompileKernelHeader header;
  header.set_mil_text(testing::ScaleMilText(8, 2.0));
  absl::StatusOr<v1::CompileKernelResponse> compiled = setup->CompileKernel(header, {});
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  const std::string kernel = compiled->kernel().id();
  const std::string session = Start(d, {"--steps", "1000000"});
  ASSERT_FALSE(session.empty());
  WaitForStep(d, session, 2);
  Print("started", ReadUse(d.pid()));

  LoadResult warm = RunLoad(options, clients, absl::Seconds(5), kernel, session);
  EXPECT_EQ(warm.failures, 0);
  ProcessUse baseline = ReadUse(d.pid());
  baseline = Settle(d.pid(), baseline);
  Print("baseline after warm-up", baseline);

  LoadResult load = RunLoad(options, clients, duration, kernel, session);
  std::printf("[soak] %d clients x %lld s: %lld calls, %lld failed\n", clients,
              static_cast<long long>(absl::ToInt64Seconds(duration)),
              static_cast<long long>(load.calls), static_cast<long long>(load.failures));
  for (const auto& [kind, count] : load.failure_kinds) {
    std::printf("[soak]   %d x %s\n", count, kind.c_str());
  }
  Print("during (end of load)", ReadUse(d.pid()));
  const ProcessUse after = Settle(d.pid(), baseline);
  Print("after", after);
  EXPECT_EQ(load.failures, 0);
  EXPECT_GT(load.calls, clients);
  EXPECT_LE(after.threads, baseline.threads);
  EXPECT_LE(after.fds, baseline.fds);
  // The session keeps training meanwhile, so allow the allocator some slack.
  EXPECT_LE(after.rss_kb, baseline.rss_kb + 64 * 1024);
  testing::RunResult stop = d.Anectl({"train", "stop", session});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
}

}  // namespace
}  // namespace anerd
