// WorkerPool supervision (worker_pool.h): starting, replacing and stopping worker processes, the
// monitor thread (heartbeats, call timeouts, idle deaths) and the pool's status.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "server/worker/worker_pool.h"
#include "spdlog/spdlog.h"

namespace anerd::worker {
namespace {

constexpr size_t kMaxReasons = 8;  // restart reasons kept for Status()

}  // namespace

absl::StatusOr<std::unique_ptr<Process>> WorkerPool::Spawn(uint64_t generation) {
  SpawnOptions spawn;
  spawn.name = options_.backend;
  spawn.binary = options_.binary;
  spawn.args = {absl::StrCat("--worker=", options_.backend),
                absl::StrCat("--compile-budget=", options_.compile_budget),
                absl::StrCat("--log-level=", options_.log_level)};
  if (options_.test_ops) spawn.args.push_back("--testonly_ops");
  if (!options_.sim_settings.empty()) {
    spawn.args.push_back(absl::StrCat("--testonly_sim=", options_.sim_settings));
  }
  {
    absl::MutexLock lock(&mu_);
    if (!ane_rules_.empty()) {
      spawn.args.push_back(absl::StrCat("--ane_rules=", mil::EncodeAneRuleOverrides(ane_rules_)));
    }
  }
  return SpawnWorkerProcess(spawn, generation);
}

absl::StatusOr<wire::Hello> WorkerPool::AwaitHello(Process* p) {
  const int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(options_.start_timeout));
  wire::Response r;
  ANERD_RETURN_IF_ERROR(p->channel->WaitReadable(timeout_ms)
                            ? wire::Receive(*p->channel, &r)
                            : absl::DeadlineExceededError("no reply within the start timeout"));
  const wire::Hello* hello = std::get_if<wire::Hello>(&r.kind);
  const uint32_t protocol = hello != nullptr ? hello->protocol : 0;
  if (protocol != wire::kProtocol) {
    return absl::InternalError(absl::StrCat("worker speaks protocol ", protocol));
  }
  if (!hello->available) return absl::UnavailableError(hello->unavailable_reason);
  return *hello;
}

void WorkerPool::AdoptHelloLocked(const wire::Hello& hello) {
  description_ = hello.description;
  description_.facts.emplace_back("isolation", "worker process");
  supported_.clear();
  supported_.insert(hello.supported_ops.begin(), hello.supported_ops.end());
}

absl::Status WorkerPool::StartFirst() {
  absl::MutexLock call(&call_mu_);
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<Process> p, Spawn(++generation_));
  absl::StatusOr<wire::Hello> hello = AwaitHello(p.get());
  if (!hello.ok()) {
    p->KillAndWait();
    if (hello.status().code() == absl::StatusCode::kUnavailable) return hello.status();
    return absl::InternalError(absl::StrCat("the ", options_.backend,
                                            " worker did not start: ", hello.status().message(),
                                            " (", DescribeWait(p->wait_status), ")"));
  }
  {
    absl::MutexLock lock(&mu_);
    AdoptHelloLocked(*hello);
    current_ = std::move(p);
    current_compiles_ = 0;
  }
  spdlog::info("{} worker started (pid {})", options_.backend, current_->pid);
  monitor_ = std::thread([this] { MonitorLoop(); });
  return absl::OkStatus();
}

void WorkerPool::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (monitor_.joinable()) monitor_.join();
  absl::MutexLock call(&call_mu_);
  absl::MutexLock lock(&mu_);
  if (current_ != nullptr) {
    retired_.push_back(std::move(current_));
  }
  for (auto& p : retired_) {
    if (p->reaped) continue;
    wire::Request req;
    req.kind = wire::Shutdown{};
    if (p->channel != nullptr) (void)wire::Send(*p->channel, req);
    p->channel.reset();
  }
  for (auto& p : retired_) {
    WaitForExitLocked(p.get(), absl::Seconds(2));
    if (!p->reaped) {
      p->Kill();
      WaitForExitLocked(p.get(), absl::Seconds(2));
    }
  }
  retired_.clear();
}

void WorkerPool::WaitForExitLocked(Process* p, absl::Duration limit) {
  const absl::Time give_up = MonotonicNow() + limit;
  for (p->TryReap(); !p->reaped && MonotonicNow() < give_up; p->TryReap()) {
    mu_.Unlock();
    absl::SleepFor(absl::Milliseconds(5));
    mu_.Lock();
  }
}

void WorkerPool::NoteRestartLocked(std::string reason, bool crash) {
  ++restarts_;
  if (crash) ++crashes_;
  reasons_.push_back(std::move(reason));
  while (reasons_.size() > kMaxReasons) reasons_.pop_front();
}

absl::Status WorkerPool::EnsureRunningLocked() {
  Process* p = current_.get();
  bool dead = p == nullptr;
  if (p != nullptr) {
    absl::MutexLock lock(&mu_);
    p->TryReap();
    dead = p->reaped || stopping_;
    if (stopping_) return absl::UnavailableError(absl::StrCat(options_.backend, " is stopping"));
  }
  if (!dead) return absl::OkStatus();
  if (p != nullptr) RecordDeath(p, "", "");
  absl::StatusOr<std::unique_ptr<Process>> fresh = Spawn(++generation_);
  if (!fresh.ok()) return absl::UnavailableError(fresh.status().message());
  absl::StatusOr<wire::Hello> hello = AwaitHello(fresh->get());
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Process> old = std::move(current_);
  current_ = *std::move(fresh);
  current_compiles_ = 0;
  pending_release_.clear();
  if (old != nullptr) {
    old->retired_at = MonotonicNow();
    retired_.push_back(std::move(old));
  }
  if (!hello.ok()) {
    current_->kill_reason = "failed to start";
    current_->Kill();
    return absl::UnavailableError(absl::StrCat("cannot restart the ", options_.backend,
                                               " worker: ", hello.status().message()));
  }
  // The binary may have been upgraded on disk since the first worker: take what this one offers.
  AdoptHelloLocked(*hello);
  spdlog::info("{} worker generation {} started (pid {})", options_.backend, generation_,
               current_->pid);
  return absl::OkStatus();
}

WorkerStatus WorkerPool::Status() const {
  absl::MutexLock lock(&mu_);
  WorkerStatus s;
  s.backend = options_.backend;
  if (current_ != nullptr && !current_->reaped) {
    s.pid = current_->pid;
    s.generation = current_->generation;
    s.uptime_seconds = absl::ToDoubleSeconds(absl::Now() - current_->started);
    s.activity =
        current_->in_call
            ? absl::StrCat(current_->call_what, " for ",
                           absl::FormatDuration(absl::Trunc(MonotonicNow() - current_->call_started,
                                                            absl::Milliseconds(1))))
            : "idle";
  } else {
    s.activity = "starting";
  }
  s.compiles_used = current_compiles_;
  s.compile_budget = description_.capabilities.compile_budget;
  s.restarts = restarts_;
  s.crashes = crashes_;
  for (const auto& [key, n] : crash_counts_) s.quarantined += n >= options_.quarantine_after;
  s.recent_restart_reasons.assign(reasons_.begin(), reasons_.end());
  return s;
}

void WorkerPool::MonitorLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(100))) return;
    }
    MonitorTick();
  }
}

void WorkerPool::MonitorTick() {
  bool idle_death = false;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = MonotonicNow();
    Process* p = current_.get();
    if (p != nullptr && !p->reaped) {
      if (p->TryReap()) {
        // Replaced eagerly at most once a second: a worker that keeps dying right after it
        // starts is then replaced only when a request needs it, not in a tight loop.
        idle_death = !p->in_call && now - last_eager_restart_ > absl::Seconds(1);
        if (idle_death) last_eager_restart_ = now;
      } else if (p->kill_reason.empty()) {
        if (p->HeartbeatStale(now, options_.heartbeat_timeout)) {
          p->kill_reason =
              absl::StrCat("no heartbeat for ", absl::FormatDuration(options_.heartbeat_timeout),
                           " (hung or stopped); killed");
        }
        if (p->in_call && now - p->call_started > options_.call_timeout) {
          p->kill_reason =
              absl::StrCat(p->call_what, " ran longer than ",
                           absl::FormatDuration(options_.call_timeout), " (hung); killed");
        }
        if (!p->kill_reason.empty()) {
          spdlog::error("{} worker (pid {}): {}", options_.backend, p->pid, p->kill_reason);
          p->Kill();
        }
      }
    }
    for (auto it = retired_.begin(); it != retired_.end();) {
      (*it)->TryReap();
      if (!(*it)->reaped && now - (*it)->retired_at > absl::Seconds(5)) (*it)->Kill();
      it = (*it)->reaped ? retired_.erase(it) : it + 1;
    }
  }
  // A worker that died while idle is replaced now rather than on the next request, unless a
  // request is using the channel (it will notice and replace it itself).
  if (idle_death && call_mu_.TryLock()) {
    absl::Status st = EnsureRunningLocked();
    if (!st.ok()) spdlog::error("{}", st.ToString());
    call_mu_.Unlock();
  }
}

}  // namespace anerd::worker
