// Interactive wait while a model trains (issue 22's p99 row): a training session of stories110m
// (one sequence of 256 per step) runs in the in-process server (bench_server.h: the real Engine,
// its device executor and priority queue, the Anerd service over a Unix socket), and a client
// evaluates a tiny kernel on the same backend at a steady rate. Printed, all from the same run:
//   * the evaluations' queue wait (server-side EvalTiming.queued_us) p50 / p99 / max, their client
//     round trip, and the round trip when idle before training started (reference);
//   * completion - due: the wait counted from when each call was due. --mode open (default): each
//     call is sent at its due time whatever happened to the earlier ones (gRPC callback API, at
//     most kMaxInFlight in flight; a call due beyond that is not sent and counted). --mode closed:
//     one call in flight, a late call is sent when the previous returns (this measures the
//     client's pace as much as the server: each late call waits for the next yield);
//   * from the session's trace (GetSessionTrace): the longest single training kernel;
//   * from the executor (DeviceExecutor::SetObserver): the longest stretch a training task held
//     the device between yield points, and the trainer's spans inside it (what bounds it);
//   * ratio = p99 queue wait / longest training kernel (target <= 2), and p99 completion - due
//     over the same kernel;
//   * where the slowest calls spent their time, phase by phase (closed loop: PhaseRecorder below;
//     open loop: the server's durations and the transport around them), and how long
//     each of the process's threads waited for a CPU (Linux: /proc schedstat) over the run.
// Not a test (no timed assertion anywhere); run by bench/interactive_wait.sh.
//
//   interactive_wait_bench [--model stories110m] [--numerics fp32] [--steps 4]
//                          [--period-ms 10] [--skip-steps 1] [--mode open|closed]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/bench_args.h"
#include "bench/bench_server.h"
#include "bench/tiny_kernel.h"

namespace anerd::bench {
namespace {

using Clock = std::chrono::steady_clock;
double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

struct Quantiles {
  double p50 = 0, p99 = 0, max = 0;
};
Quantiles Quantile(std::vector<double> v) {
  Quantiles q;
  if (v.empty()) return q;
  std::sort(v.begin(), v.end());
  q.p50 = v[v.size() / 2];
  q.p99 = v[std::min(v.size() - 1, static_cast<size_t>(v.size() * 0.99))];
  q.max = v.back();
  return q;
}

// The longest kernel span over the steps in [first, last].
std::pair<double, std::string> LongestKernel(const v1::SessionTrace& trace, int64_t first,
                                             int64_t last) {
  std::pair<double, std::string> best{0, ""};
  for (const v1::TraceSpan& s : trace.spans()) {
    if (s.step() < first || s.step() > last || s.name().rfind("kernel ", 0) != 0) continue;
    const double ms = s.duration_ns() / 1e6;
    if (ms > best.first) best = {ms, s.name() + " L" + std::to_string(s.layer())};
  }
  return best;
}

// The trainer's spans of >= 5 ms that began inside [from, to).
std::string SpansIn(const v1::SessionTrace& trace, int64_t from, int64_t to) {
  std::string out;
  for (const v1::TraceSpan& s : trace.spans()) {
    if (s.name() == "step" || s.duration_ns() < 5000000) continue;
    if (s.start_unix_ns() < from || s.start_unix_ns() >= to) continue;
    char buf[96];
    std::snprintf(buf, sizeof(buf), " %s %.1f ms;", s.name().c_str(), s.duration_ns() / 1e6);
    out += buf;
  }
  return out;
}

// A training task holds the device from its start to its end except at its yields, where queued
// interactive calls run; the longest stretch from a start or yield to the next yield or end is
// the longest an interactive call can wait behind it.
class StretchRecorder {
 public:
  void Observe(const engine::ExecutorEvent& e) {
    if (e.task_class != engine::TaskClass::kTraining || e.inline_run) return;
    const int64_t now = absl::ToUnixNanos(absl::Now());
    absl::MutexLock lock(&mu_);
    if (!on_) return;
    if (e.kind != engine::ExecutorEvent::Kind::kStart && open_ns_ > 0 &&
        now - open_ns_ > longest_ns_) {
      longest_ns_ = now - open_ns_;
      longest_from_ns_ = open_ns_;
    }
    open_ns_ = e.kind == engine::ExecutorEvent::Kind::kEnd ? 0 : now;
  }
  void Set(bool on) {
    absl::MutexLock lock(&mu_);
    on_ = on;
  }
  // (length, start), Unix ns.
  std::pair<int64_t, int64_t> Longest() {
    absl::MutexLock lock(&mu_);
    return {longest_ns_, longest_from_ns_};
  }

 private:
  absl::Mutex mu_;
  bool on_ = false;
  int64_t open_ns_ = 0, longest_ns_ = 0, longest_from_ns_ = 0;
};

// The executor's start of the evaluation in flight (closed loop: one at a time), or of every
// evaluation in order (open loop, while Record(true)): the only server-side moment the response
// does not carry. With EvalTiming's durations it places the handler's entry (start - queued -
// copy_in) and its hand-off of the reply to gRPC (entry + total).
class PhaseRecorder {
 public:
  void Observe(const engine::ExecutorEvent& e) {
    if (e.kind == engine::ExecutorEvent::Kind::kStart &&
        e.task_class == engine::TaskClass::kInteractive && e.what == "evaluation") {
      const int64_t now = absl::ToUnixNanos(absl::Now());
      start_ns_.store(now);
      absl::MutexLock lock(&mu_);
      if (record_) starts_.push_back(now);
    }
#if defined(__linux__)
    if (e.task_class == engine::TaskClass::kTraining && !e.inline_run) {
      executor_tid_.store(static_cast<int64_t>(syscall(SYS_gettid)));
    }
#endif
  }
  void Reset() { start_ns_.store(0); }
  int64_t start_ns() const { return start_ns_.load(); }
  int64_t executor_tid() const { return executor_tid_.load(); }
  void Record(bool on) {
    absl::MutexLock lock(&mu_);
    record_ = on;
  }
  std::vector<int64_t> Starts() {
    absl::MutexLock lock(&mu_);
    return starts_;
  }

 private:
  std::atomic<int64_t> start_ns_{0};
  std::atomic<int64_t> executor_tid_{0};
  absl::Mutex mu_;
  bool record_ = false;
  std::vector<int64_t> starts_;
};

// One evaluation's timeline (Unix ns, one clock: client and server share the process) and the
// server's own durations (EvalTiming, µs).
struct CallRecord {
  int64_t index = 0;  // this is the kernel's index-th evaluation (1-based, the idle ones counted)
  int64_t due = 0, free = 0, sent = 0, received = 0, exec_start = 0;
  double copy_in_us = 0, queued_us = 0, execute_us = 0, copy_out_us = 0, total_us = 0;
  double client_cpu_wait_ms = 0;  // the client thread runnable but not running, due..received
};

// The phases of `c` in ms: to_server = sent -> handler entry, copy_in, queued, on_device = the
// rest of the handler (execute, lookup, copy-out, anything else until the reply is handed to
// gRPC), to_client = that hand-off -> the client has the reply; and, outside the round trip,
// late = sent after due (open loop) or after due and free (closed loop: the thread woke late).
std::string Phases(const CallRecord& c) {
  char buf[320];
  if (c.exec_start == 0) {  // open loop, start not matched: to_server + to_client as one
    std::snprintf(buf, sizeof(buf),
                  "#%lld (mod 256 = %lld): round trip %.1f ms = copy_in %.2f + queued %.1f + "
                  "on_device %.1f (execute %.2f) + transport %.1f; sent %.1f ms after due",
                  static_cast<long long>(c.index), static_cast<long long>(c.index % 256),
                  (c.received - c.sent) / 1e6, c.copy_in_us / 1e3, c.queued_us / 1e3,
                  (c.total_us - c.copy_in_us - c.queued_us) / 1e3, c.execute_us / 1e3,
                  (c.received - c.sent) / 1e6 - c.total_us / 1e3, (c.sent - c.due) / 1e6);
    return buf;
  }
  const double entry = c.exec_start - (c.queued_us + c.copy_in_us) * 1e3;
  const double handed = entry + c.total_us * 1e3;
  int n = std::snprintf(
      buf, sizeof(buf),
      "#%lld (mod 256 = %lld): round trip %.1f ms = to_server %.1f + copy_in %.2f + queued %.1f + "
      "on_device %.1f (execute %.2f) + to_client %.1f; late %.1f",
      static_cast<long long>(c.index), static_cast<long long>(c.index % 256),
      (c.received - c.sent) / 1e6, (entry - c.sent) / 1e6, c.copy_in_us / 1e3, c.queued_us / 1e3,
      (c.total_us - c.copy_in_us - c.queued_us) / 1e3, c.execute_us / 1e3,
      (c.received - handed) / 1e6, (c.sent - c.free) / 1e6);
  if (c.client_cpu_wait_ms >= 0 && n > 0 && n < static_cast<int>(sizeof(buf))) {
    std::snprintf(buf + n, sizeof(buf) - n, "; client thread waited for a CPU %.1f ms",
                  c.client_cpu_wait_ms);
  }
  return buf;
}

// Nanoseconds a thread ran and waited runnable for a CPU (/proc/.../schedstat); {0, 0} elsewhere.
struct SchedStat {
  int64_t run_ns = 0, wait_ns = 0;
};
SchedStat ReadSchedStat(const char* path) {
  SchedStat s;
#if defined(__linux__)
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return s;
  char buf[128];
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return s;
  buf[n] = '\0';
  long long run = 0, wait = 0;
  if (std::sscanf(buf, "%lld %lld", &run, &wait) == 2) s = {run, wait};
#else
  (void)path;
#endif
  return s;
}

// Every thread of this process: tid -> (name, schedstat).
std::map<int64_t, std::pair<std::string, SchedStat>> ThreadStats() {
  std::map<int64_t, std::pair<std::string, SchedStat>> out;
#if defined(__linux__)
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const std::string base = std::string("/proc/self/task/") + e->d_name;
    std::ifstream comm(base + "/comm");
    std::string name;
    std::getline(comm, name);
    out[std::atoll(e->d_name)] = {name, ReadSchedStat((base + "/schedstat").c_str())};
  }
  closedir(dir);
#endif
  return out;
}

absl::StatusOr<v1::SessionInfo> GetSession(client::AnerdClient* c, const std::string& id) {
  v1::GetSessionRequest req;
  req.set_session_id(id);
  v1::SessionInfo info;
  auto ctx = c->NewContext();
  grpc::Status s = c->stub()->GetSession(ctx.get(), req, &info);
  if (!s.ok()) return absl::UnknownError(s.error_message());
  return info;
}

constexpr int kMaxInFlight = 64;  // open loop: calls in flight at most
constexpr int kIdleEvals = 300;   // closed-loop evaluations before training: the idle reference

bool Finished(const std::string& state) {
  return state == "completed" || state == "failed" || state == "stopped" || state == "paused" ||
         state == "interrupted";
}

// Call i is due at `unix_ns0` + i·period; `steady0` is the same moment on the steady clock.
struct Schedule {
  int64_t unix_ns0;
  Clock::time_point steady0;
  Clock::duration period;
  int64_t DueUnixNs(int64_t i) const {
    return unix_ns0 + std::chrono::duration_cast<std::chrono::nanoseconds>(i * period).count();
  }
};

void Fill(const v1::EvalTiming& t, CallRecord* c) {
  c->copy_in_us = t.copy_in_us();
  c->queued_us = t.queued_us();
  c->execute_us = t.execute_us();
  c->copy_out_us = t.copy_out_us();
  c->total_us = t.total_us();
}

// Closed loop: one call in flight; a call due while the previous one still waits is sent when it
// returns (its wait still counts from its due time). Records the executor's start of each call.
std::vector<CallRecord> RunClosed(client::AnerdClient* client, const v1::EvalKernelRequest& req,
                                  const Schedule& schedule, const std::atomic<bool>& finished,
                                  PhaseRecorder& phases) {
  std::vector<CallRecord> calls;
  int64_t prev_received = 0;
  for (int64_t i = 0; !finished.load(); ++i) {
    const SchedStat cpu0 = ReadSchedStat("/proc/thread-self/schedstat");
    std::this_thread::sleep_until(schedule.steady0 + i * schedule.period);
    phases.Reset();
    CallRecord c;
    c.index = kIdleEvals + i + 1;
    c.due = schedule.DueUnixNs(i);
    c.free = std::max(c.due, prev_received);
    c.sent = absl::ToUnixNanos(absl::Now());
    auto r = client->EvalKernel(req);
    c.received = absl::ToUnixNanos(absl::Now());
    const SchedStat cpu1 = ReadSchedStat("/proc/thread-self/schedstat");
    if (!r.ok()) {
      std::fprintf(stderr, "eval: %s\n", r.status().ToString().c_str());
      return {};
    }
    c.exec_start = phases.start_ns();
    Fill(r->timing(), &c);
    c.client_cpu_wait_ms = (cpu1.wait_ns - cpu0.wait_ns) / 1e6;
    prev_received = c.received;
    calls.push_back(c);
  }
  return calls;
}

// Open loop: each call is sent at its due time whatever happened to the earlier ones (gRPC's
// callback API), at most kMaxInFlight at once; a call due while that many are in flight is not
// sent and counted in `*overflow`. Returns once every sent call has completed. The k-th
// evaluation the executor started is taken as the k-th call sent (one channel, FIFO within a
// class; neighbours may swap), kept only when it falls between that call's send and completion.
std::vector<CallRecord> RunOpen(client::AnerdClient* client, const v1::EvalKernelRequest& req,
                                const Schedule& schedule, const std::atomic<bool>& finished,
                                PhaseRecorder& phases, int64_t* overflow) {
  struct Call {
    std::unique_ptr<grpc::ClientContext> ctx;
    v1::EvalKernelResponse resp;
    CallRecord rec;
  };
  std::deque<Call> calls;  // stable addresses for the callbacks
  absl::Mutex mu;
  int in_flight = 0;
  int64_t failed = 0;
  std::string error;
  phases.Record(true);
  for (int64_t i = 0; !finished.load(); ++i) {
    std::this_thread::sleep_until(schedule.steady0 + i * schedule.period);
    {
      absl::MutexLock lock(&mu);
      if (in_flight >= kMaxInFlight) {
        ++*overflow;
        continue;
      }
      ++in_flight;
    }
    Call& call = calls.emplace_back();
    call.ctx = client->NewContext();
    call.rec.index = kIdleEvals + i + 1;
    call.rec.due = schedule.DueUnixNs(i);
    call.rec.free = call.rec.due;  // "late" = sent after due
    call.rec.sent = absl::ToUnixNanos(absl::Now());
    call.rec.client_cpu_wait_ms = -1;  // not per call: several in flight
    client->stub()->async()->EvalKernel(call.ctx.get(), &req, &call.resp,
                                        [&, c = &call](grpc::Status s) {
                                          c->rec.received = absl::ToUnixNanos(absl::Now());
                                          absl::MutexLock lock(&mu);
                                          --in_flight;
                                          if (!s.ok()) {
                                            ++failed;
                                            error = s.error_message();
                                          }
                                        });
  }
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &in_flight));
  phases.Record(false);
  if (failed > 0) {
    std::fprintf(stderr, "%lld evaluations failed: %s\n", static_cast<long long>(failed),
                 error.c_str());
    return {};
  }
  const std::vector<int64_t> starts = phases.Starts();
  std::vector<CallRecord> out;
  for (Call& c : calls) {
    Fill(c.resp.timing(), &c.rec);
    const size_t k = out.size();
    if (k < starts.size() && starts[k] >= c.rec.sent && starts[k] <= c.rec.received) {
      c.rec.exec_start = starts[k];
    }
    out.push_back(c.rec);
  }
  return out;
}

int Main(int argc, char** argv) {
  const std::string model = Flag(argc, argv, "--model", "stories110m");
  const std::string numerics = Flag(argc, argv, "--numerics", "fp32");
  const int steps = std::atoi(Flag(argc, argv, "--steps", "4"));
  const int skip = std::atoi(Flag(argc, argv, "--skip-steps", "1"));
  const double period_ms = std::atof(Flag(argc, argv, "--period-ms", "10"));
  const std::string mode = Flag(argc, argv, "--mode", "open");
  if (mode != "open" && mode != "closed") {
    std::fprintf(stderr, "--mode must be open or closed, not %s\n", mode.c_str());
    return 2;
  }
  const bool open = mode == "open";
  std::unique_ptr<BenchServer> server = BenchServer::Start("anerd-wait-bench");
  if (server == nullptr) return 1;
  client::AnerdClient* client = &server->client();

  // Training text under the server's data root.
  const std::string data = server->dir() + "/stories.txt";
  {
    std::ofstream out(data);
    std::mt19937 rng(1);
    const char* words[] = {"once",  "upon",   "a",    "time",  "there", "was",
                           "a",     "little", "cat",  "named", "lily",  "who",
                           "liked", "to",     "play", "in",    "the",   "park"};
    for (int i = 0; i < 200000; ++i) out << words[rng() % 18] << ' ';
  }

  v1::CompileKernelHeader header;
  header.set_mil_text(kTinyMil);
  auto compiled = client->CompileKernel(header, {});
  if (!compiled.ok()) {
    std::fprintf(stderr, "compile failed: %s\n", compiled.status().ToString().c_str());
    return 1;
  }
  const v1::EvalKernelRequest req = TinyEvalRequest(compiled->kernel().id());

  std::vector<double> idle_us;
  for (int i = 0; i < kIdleEvals; ++i) {
    auto s0 = Clock::now();
    if (!client->EvalKernel(req).ok()) return 1;
    if (i >= 30) idle_us.push_back(Us(Clock::now() - s0));
  }

  StretchRecorder stretches;
  PhaseRecorder phases;
  engine::DeviceExecutor* executor = server->engine().executor("cpu");
  if (executor == nullptr) {
    std::fprintf(stderr, "no cpu executor\n");
    return 1;
  }
  executor->SetObserver([&stretches, &phases](const engine::ExecutorEvent& e) {
    stretches.Observe(e);
    phases.Observe(e);
  });

  v1::StartTrainingRequest start;
  v1::TrainingSpec* spec = start.mutable_spec();
  spec->set_name("wait-bench");
  spec->set_model(model);
  spec->set_data(data);
  spec->set_steps(steps + skip);
  spec->set_numerics(numerics);
  spec->set_loss_scale("1");
  spec->set_warmup(0);
  spec->set_has_warmup(true);
  spec->set_backend("cpu");
  v1::SessionInfo session;
  {
    auto ctx = client->NewContext();
    grpc::Status s = client->stub()->StartTraining(ctx.get(), start, &session);
    if (!s.ok()) {
      std::fprintf(stderr, "StartTraining: %s\n", s.error_message().c_str());
      return 1;
    }
  }
  const std::string id = session.id();
  // Measured from the end of the first `skip` steps (compile, first-step warm-up).
  for (;;) {
    auto info = GetSession(client, id);
    if (!info.ok()) return 1;
    if (Finished(info->state())) {
      std::fprintf(stderr, "session ended early: %s %s\n", info->state().c_str(),
                   info->error().c_str());
      return 1;
    }
    if (info->step() >= skip) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // The session's state is polled on another thread (its own client), so the evaluation loop
  // does nothing else. Open loop: call i is due at start + i·period whatever happened before.
  std::atomic<bool> finished{false};
  std::thread poller([&] {
#if defined(__linux__)
    pthread_setname_np(pthread_self(), "bench-poller");
#endif
    std::unique_ptr<client::AnerdClient> own = client::AnerdClient::Create(client->options());
    while (!finished.load()) {
      auto info = GetSession(own.get(), id);
      if (!info.ok() || Finished(info->state())) finished.store(true);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
#if defined(__linux__)
  pthread_setname_np(pthread_self(), "bench-client");
#endif
  const auto threads_before = ThreadStats();
  stretches.Set(true);
  const Schedule schedule{absl::ToUnixNanos(absl::Now()), Clock::now(),
                          std::chrono::microseconds(static_cast<int64_t>(period_ms * 1000))};
  int64_t overflow = 0;
  const std::vector<CallRecord> calls =
      open ? RunOpen(client, req, schedule, finished, phases, &overflow)
           : RunClosed(client, req, schedule, finished, phases);
  if (calls.empty()) return 1;
  std::vector<double> wait_us, rtt_us, due_us;
  for (const CallRecord& c : calls) {
    wait_us.push_back(c.queued_us);
    rtt_us.push_back((c.received - c.sent) / 1e3);
    due_us.push_back((c.received - c.due) / 1e3);
  }
  poller.join();
  stretches.Set(false);
  const auto threads_after = ThreadStats();
  executor->SetObserver(nullptr);
  auto info = GetSession(client, id);
  if (!info.ok() || info->state() != "completed") {
    std::fprintf(stderr, "session did not complete: %s\n", info.ok() ? info->error().c_str() : "");
    return 1;
  }
  const int64_t first_step = skip + 1, last_step = info->step();
  v1::GetSessionTraceRequest treq;
  treq.set_session_id(id);
  treq.set_first_step(first_step);
  treq.set_last_step(last_step);
  v1::SessionTrace trace;
  {
    auto ctx = client->NewContext();
    grpc::Status s = client->stub()->GetSessionTrace(ctx.get(), treq, &trace);
    if (!s.ok()) {
      std::fprintf(stderr, "GetSessionTrace: %s\n", s.error_message().c_str());
      return 1;
    }
  }
  const auto [kernel_ms, kernel] = LongestKernel(trace, first_step, last_step);
  const auto [stretch_ns, stretch_from] = stretches.Longest();
  const double stretch_ms = stretch_ns / 1e6;
  const std::string inside = SpansIn(trace, stretch_from, stretch_from + stretch_ns);
  const Quantiles w = Quantile(wait_us), rt = Quantile(rtt_us), idle = Quantile(idle_us);
  const Quantiles due = Quantile(due_us);
  const double ratio = w.p99 / 1e3 / kernel_ms;
  std::printf(
      "%s %s, steps %lld-%lld, %s loop: %zu evaluations every %.0f ms, %lld not sent (due while "
      "%d were in flight)\n"
      "  queue wait (server): p50 %.2f ms, p99 %.2f ms, max %.2f ms\n"
      "  round trip: p50 %.2f ms, p99 %.2f ms, max %.2f ms (idle before training: p50 %.3f ms, max "
      "%.2f ms)\n"
      "  completion - due: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n"
      "  longest training kernel %.2f ms (%s)\n"
      "  longest stretch a training task held the device without yielding %.2f ms; trainer "
      "spans that began in it:%s\n"
      "  ratio p99 queue wait / longest kernel %.2f (target <= 2); p99 completion - due / "
      "longest kernel %.2f\n",
      model.c_str(), numerics.c_str(), static_cast<long long>(first_step),
      static_cast<long long>(last_step), mode.c_str(), wait_us.size(), period_ms,
      static_cast<long long>(overflow), kMaxInFlight, w.p50 / 1e3, w.p99 / 1e3, w.max / 1e3,
      rt.p50 / 1e3, rt.p99 / 1e3, rt.max / 1e3, idle.p50 / 1e3, idle.max / 1e3, due.p50 / 1e3,
      due.p99 / 1e3, due.max / 1e3, kernel_ms, kernel.c_str(), stretch_ms, inside.c_str(), ratio,
      due.p99 / 1e3 / kernel_ms);
  // Where the slowest round trips went, phase by phase.
  std::vector<CallRecord> slowest = calls;
  std::sort(slowest.begin(), slowest.end(), [](const CallRecord& a, const CallRecord& b) {
    return a.received - a.sent > b.received - b.sent;
  });
  if (slowest.size() > 8) slowest.resize(8);
  std::printf("  slowest round trips, phase by phase:\n");
  for (const CallRecord& c : slowest) std::printf("    %s\n", Phases(c).c_str());
  // Every 256th evaluation of a kernel is the one that counts its hits to the store
  // (kernel_manager.cc kFlushEvery): before the usage writer, it did so on the device.
  std::vector<double> flush_on_device, other_on_device;
  for (const CallRecord& c : calls) {
    (c.index % 256 == 0 ? flush_on_device : other_on_device)
        .push_back((c.total_us - c.copy_in_us - c.queued_us) / 1e3);
  }
  const Quantiles fq = Quantile(flush_on_device), oq = Quantile(other_on_device);
  std::printf(
      "  on_device of every 256th evaluation (the hit-counter flush): %zu calls, p50 %.2f ms, "
      "max %.2f ms; of the others: p50 %.3f ms, max %.2f ms\n",
      flush_on_device.size(), fq.p50, fq.max, oq.p50, oq.max);
  // How long each thread waited for a CPU while it was runnable (CFS/EEVDF run-queue delay).
  std::printf("  threads over the measured window (ran / waited runnable for a CPU, ms):\n");
  for (const auto& [tid, after] : threads_after) {
    auto it = threads_before.find(tid);
    const SchedStat before = it != threads_before.end() ? it->second.second : SchedStat{};
    const double ran = (after.second.run_ns - before.run_ns) / 1e6;
    const double waited = (after.second.wait_ns - before.wait_ns) / 1e6;
    if (ran < 1 && waited < 1) continue;
    std::printf("    %lld %-16s%s %9.1f / %8.1f\n", static_cast<long long>(tid),
                after.first.c_str(), tid == phases.executor_tid() ? " (executor)" : "", ran,
                waited);
  }
  std::printf(
      "{\"type\":\"interactive_wait\",\"mode\":\"%s\",\"model\":\"%s\",\"numerics\":\"%s\","
      "\"evals\":%zu,\"not_sent\":%lld,"
      "\"wait_p50_ms\":%.3f,\"wait_p99_ms\":%.3f,\"wait_max_ms\":%.3f,\"due_p99_ms\":%.3f,"
      "\"longest_kernel_ms\":%.3f,\"longest_stretch_ms\":%.3f,\"ratio\":%.3f,"
      "\"due_ratio\":%.3f}\n",
      mode.c_str(), model.c_str(), numerics.c_str(), wait_us.size(),
      static_cast<long long>(overflow), w.p50 / 1e3, w.p99 / 1e3, w.max / 1e3, due.p99 / 1e3,
      kernel_ms, stretch_ms, ratio, due.p99 / 1e3 / kernel_ms);
  return 0;
}

}  // namespace
}  // namespace anerd::bench

int main(int argc, char** argv) { return anerd::bench::Main(argc, argv); }
