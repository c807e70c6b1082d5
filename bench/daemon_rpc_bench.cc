// Tiny-evaluation round trip through a real anerd (issue 22, item 3): the daemon binary started as
// its own process on a Unix socket, so the call crosses everything a client's call crosses (the
// interceptors: auth, quota, metrics, request logging; the service; the device executor), against
// a bare gRPC echo server (bench_server.h's Echo) in a process of its own on the same kind of
// socket, with payloads of the same sizes, calls alternated in one run. Prints the medians, the
// daemon's own handler time (EvalTiming.total_us) and the ratio (target <= 1.3), and the same
// echo served with a no-op server interceptor (what gRPC's interceptor path costs), and the bare
// echo with a deadline (anerd's client sets one on every call: what that costs), and the same
// evaluation answered at once by a server with the daemon's messages and none of its work, through
// an AnerdClient (what the message shapes and the client cost). Not a test.
//
//   daemon_rpc_bench [--anerd PATH] [--evals N] [--deadlock-detection on|off (default off)]
// PATH defaults to ../bin/anerd next to this binary's directory (the build tree's layout).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "bench/bench_args.h"
#include "bench/bench_server.h"
#include "bench/tiny_kernel.h"

namespace anerd::bench {
namespace {

using Clock = std::chrono::steady_clock;
double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(v.size() * q))];
}

pid_t Spawn(const std::vector<std::string>& argv) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  std::perror("execv");
  std::_Exit(127);
}

void Stop(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
}

int Main(int argc, char** argv) {
  const std::string self_dir = std::filesystem::path(argv[0]).parent_path().string();
  const std::string anerd = Flag(argc, argv, "--anerd", (self_dir + "/../bin/anerd").c_str());
  const int64_t evals = std::atoll(Flag(argc, argv, "--evals", "3000"));
  // Abseil's mutex deadlock detection (on in Debian's build, off in anerd unless asked): the same
  // mode in every process of the run — this one, the echo servers forked below, and the daemon —
  // so the ratio compares the two servers' own paths, not two configurations of the library.
  const std::string detection = Flag(argc, argv, "--deadlock-detection", "off");
  if (detection != "on" && detection != "off") {
    std::fprintf(stderr, "--deadlock-detection takes on or off, not %s\n", detection.c_str());
    return 2;
  }
  absl::SetMutexDeadlockDetectionMode(detection == "on" ? absl::OnDeadlockCycle::kAbort
                                                        : absl::OnDeadlockCycle::kIgnore);
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("anerd-rpc-bench-" + std::to_string(getpid())))
          .string();
  std::filesystem::create_directories(dir + "/state");
  // The reference first, forked before this process starts any gRPC thread.
  const pid_t echo_pid = fork();
  if (echo_pid == 0) ServeEchoForever("unix:" + dir + "/echo.sock");
  // The same echo with a server interceptor that only proceeds: what the hook costs by itself.
  const pid_t hooked_pid = fork();
  if (hooked_pid == 0) ServeEchoForever("unix:" + dir + "/hooked.sock", /*noop_interceptor=*/true);
  // The daemon's messages and client path with none of its work: what the message shapes cost.
  const pid_t shaped_pid = fork();
  if (shaped_pid == 0) ServeShapedEvalForever("unix:" + dir + "/shaped.sock");
  const pid_t anerd_pid = Spawn(
      {anerd, "--socket", dir + "/a.sock", "--state-dir", dir + "/state", "--log-level", "warn",
       "--mutex-deadlock-detection=" + std::string(detection == "on" ? "true" : "false")});
  int rc = 1;
  [&] {
    client::ClientOptions co;
    co.endpoint.path = dir + "/a.sock";
    std::unique_ptr<client::AnerdClient> client = client::AnerdClient::Create(co);
    bool up = false;
    for (int i = 0; i < 600 && !up; ++i) {
      auto h = client->Health();
      up = h.ok() && *h == grpc::health::v1::HealthCheckResponse::SERVING;
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!up) {
      std::fprintf(stderr, "anerd (%s) did not come up on %s/a.sock\n", anerd.c_str(), dir.c_str());
      return;
    }
    auto echo = Echo::NewStub(
        grpc::CreateChannel("unix:" + dir + "/echo.sock", grpc::InsecureChannelCredentials()));
    v1::CompileKernelHeader header;
    header.set_mil_text(kTinyMil);
    auto compiled = client->CompileKernel(header, {});
    if (!compiled.ok()) {
      std::fprintf(stderr, "compile failed: %s\n", compiled.status().ToString().c_str());
      return;
    }
    const v1::EvalKernelRequest req = TinyEvalRequest(compiled->kernel().id());
    auto hooked = Echo::NewStub(
        grpc::CreateChannel("unix:" + dir + "/hooked.sock", grpc::InsecureChannelCredentials()));
    client::ClientOptions shaped_options;
    shaped_options.endpoint.path = dir + "/shaped.sock";
    std::unique_ptr<client::AnerdClient> shaped = client::AnerdClient::Create(shaped_options);
    Blob blob;
    blob.set_data(std::string(req.ByteSizeLong(), 'e'));
    std::vector<double> eval_us, echo_us, hooked_us, timed_us, shaped_us, handler_us, queued_us;
    std::vector<double> copy_in_us, execute_us, copy_out_us;  // the handler's parts
    // Each round makes the five calls in a rotated order (round i starts with call i % 5), so
    // every kind of call follows every other equally often: on two cores the work a server does
    // after answering (freeing the call) overlaps the next call, which a fixed order would charge
    // to one kind only.
    absl::StatusOr<v1::EvalKernelResponse> r;
    for (int64_t i = 0; i < evals; ++i) {
      double us[5] = {0, 0, 0, 0, 0};
      for (int k = 0; k < 5; ++k) {
        const int which = static_cast<int>((i + k) % 5);
        grpc::ClientContext ctx;
        Blob out;
        grpc::Status status;
        const auto t0 = Clock::now();
        switch (which) {
          case 0:
            r = client->EvalKernel(req);
            if (!r.ok()) status = grpc::Status(grpc::StatusCode::UNKNOWN, r.status().ToString());
            break;
          case 1:
            status = echo->Echo(&ctx, blob, &out);
            break;
          case 2:
            status = hooked->Echo(&ctx, blob, &out);
            break;
          case 3:  // the bare echo with a deadline, as every anerd client call carries one
            ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
            status = echo->Echo(&ctx, blob, &out);
            break;
          default:  // the same evaluation answered at once by a server with the daemon's messages
            if (absl::StatusOr<v1::EvalKernelResponse> s = shaped->EvalKernel(req); !s.ok()) {
              status = grpc::Status(grpc::StatusCode::UNKNOWN, s.status().ToString());
            }
        }
        us[which] = Us(Clock::now() - t0);
        if (!status.ok()) {
          std::fprintf(stderr, "call %d failed: %s\n", which, status.error_message().c_str());
          return;
        }
      }
      if (i < evals / 10) continue;  // warm-up
      eval_us.push_back(us[0]);
      echo_us.push_back(us[1]);
      hooked_us.push_back(us[2]);
      timed_us.push_back(us[3]);
      shaped_us.push_back(us[4]);
      handler_us.push_back(r->timing().total_us());
      queued_us.push_back(r->timing().queued_us());
      copy_in_us.push_back(r->timing().copy_in_us());
      execute_us.push_back(r->timing().execute_us());
      copy_out_us.push_back(r->timing().copy_out_us());
    }
    const double e50 = Percentile(eval_us, 0.5), c50 = Percentile(echo_us, 0.5);
    std::printf("mutex deadlock detection %s in every process\n", detection.c_str());
    std::printf(
        "tiny eval through anerd (own process, Unix socket) p50 %.1f us p90 %.1f us (daemon "
        "handler p50 %.1f us) vs bare echo (own process, Unix socket) p50 %.1f us p90 %.1f us: "
        "ratio %.2f (target <= 1.3)\n",
        e50, Percentile(eval_us, 0.9), Percentile(handler_us, 0.5), c50, Percentile(echo_us, 0.9),
        e50 / c50);
    std::printf("daemon: queued p50 %.1f us p90 %.1f us (0 = the idle device was lent)\n",
                Percentile(queued_us, 0.5), Percentile(queued_us, 0.9));
    std::printf("daemon handler parts p50: copy in %.1f us, execute %.1f us, copy out %.1f us\n",
                Percentile(copy_in_us, 0.5), Percentile(execute_us, 0.5),
                Percentile(copy_out_us, 0.5));
    std::printf("echo with a no-op server interceptor p50 %.1f us: ratio %.2f to the bare echo\n",
                Percentile(hooked_us, 0.5), Percentile(hooked_us, 0.5) / c50);
    const double t50 = Percentile(timed_us, 0.5);
    std::printf(
        "bare echo with a 30 s deadline (as anerd's client sets) p50 %.1f us: ratio %.2f to the "
        "bare echo; tiny eval / it %.2f\n",
        t50, t50 / c50, e50 / t50);
    const double s50 = Percentile(shaped_us, 0.5);
    std::printf(
        "the same evaluation answered at once with the daemon's messages and client (no work) p50 "
        "%.1f us: ratio %.2f to the bare echo; tiny eval / it %.2f (the daemon's own work)\n",
        s50, s50 / c50, e50 / s50);
    std::printf(
        "{\"type\":\"daemon_rpc\",\"eval_p50_us\":%.1f,\"echo_p50_us\":%.1f,"
        "\"handler_p50_us\":%.1f,\"ratio\":%.3f}\n",
        e50, c50, Percentile(handler_us, 0.5), e50 / c50);
    rc = 0;
  }();
  Stop(anerd_pid);
  Stop(echo_pid);
  Stop(hooked_pid);
  Stop(shaped_pid);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  return rc;
}

}  // namespace
}  // namespace anerd::bench

int main(int argc, char** argv) { return anerd::bench::Main(argc, argv); }
