#include "server/sessions/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/atomic_file.h"
#include "common/blocking_io_guard.h"
#include "spdlog/spdlog.h"

namespace anerd::sessions {
namespace {

using Kind = SessionEventRecord::Kind;

// Appends `line` to `path` (created 0600), fsynced when `sync`. On a write error the file is cut
// back to its previous end, so a torn record never stays behind; the error names the path.
absl::Status AppendLine(const std::string& path, const std::string& line, bool sync) {
  auto error = [&path](int e, const char* what) {
    return absl::Status(absl::ErrnoToStatus(e, "").code(),
                        absl::StrCat(std::strerror(e), " ", what, " ", path));
  };
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return error(errno, "opening");
  struct stat st;
  const off_t before = ::fstat(fd, &st) == 0 ? st.st_size : -1;
  absl::Status status;
  for (size_t done = 0; done < line.size() && status.ok();) {
    const ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = error(errno, "writing");
      if (before >= 0) (void)::ftruncate(fd, before);
    } else {
      done += static_cast<size_t>(n);
    }
  }
  if (status.ok() && sync && ::fsync(fd) != 0) status = error(errno, "syncing");
  if (::close(fd) != 0 && status.ok()) status = error(errno, "closing");
  return status;
}

std::string EncodeAll(const std::vector<SessionEventRecord>& events) {
  std::string text;
  for (const SessionEventRecord& e : events) text += EncodeEventLine(e) + "\n";
  return text;
}

}  // namespace

EventLog::EventLog(std::string path, Notifier* notifier, std::string session_id)
    : path_(std::move(path)), notifier_(notifier), session_id_(std::move(session_id)) {}

std::string EventLog::Load() {
  absl::StatusOr<EventLogContents> log = ReadEventLog(path_);
  if (!log.ok()) return std::string(log.status().message());
  absl::MutexLock lock(&mu_);
  events_ = std::move(log->events);
  if (!log->corruption.empty()) {
    // Keep the original for inspection and continue with the valid records.
    std::error_code ec;
    std::filesystem::rename(path_, path_ + ".corrupt", ec);
    if (absl::Status w = RewriteLocked(); !w.ok()) {
      spdlog::error("session {}: {}", session_id_, w.ToString());
    }
  } else if (log->torn_tail) {
    spdlog::warn("session {}: cutting a torn record at the end of {} (byte {})", session_id_, path_,
                 log->valid_bytes);
    if (::truncate(path_.c_str(), log->valid_bytes) != 0) {
      spdlog::error("session {}: cannot truncate {}: {}", session_id_, path_, std::strerror(errno));
    }
  }
  return log->corruption;
}

absl::Status EventLog::Append(SessionEventRecord event, bool sync) {
  NoteBlockingIo("event log append " + path_);
  std::vector<std::function<void()>> wakes;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    event.seq = events_.size();
    if (event.unix_ms == 0) event.unix_ms = absl::ToUnixMillis(absl::Now());
    status = AppendLine(path_, EncodeEventLine(event) + "\n", sync);
    events_.push_back(std::move(event));
    wakes = DueWakesLocked();
  }
  if (!status.ok()) spdlog::error("session {}: event log: {}", session_id_, status.ToString());
  notifier_->Post(std::move(wakes));
  return status;
}

absl::Status EventLog::RewriteLocked() { return WriteFileAtomically(path_, EncodeAll(events_)); }

absl::Status EventLog::Truncate(size_t n) {
  absl::MutexLock lock(&mu_);
  if (events_.size() > n) events_.resize(n);
  return RewriteLocked();
}

void EventLog::Clear() {
  absl::MutexLock lock(&mu_);
  events_.clear();
  (void)WriteFileAtomically(path_, "");
}

uint64_t EventLog::size() const {
  absl::MutexLock lock(&mu_);
  return events_.size();
}

int64_t EventLog::LastReportedStep() const {
  absl::MutexLock lock(&mu_);
  for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
    if (it->kind == Kind::kStep) return it->step.step;
  }
  return 0;
}

std::optional<uint64_t> EventLog::FindCheckpoint(int64_t step) const {
  absl::MutexLock lock(&mu_);
  for (size_t i = events_.size(); i-- > 0;) {
    if (events_[i].kind == Kind::kCheckpoint && events_[i].checkpoint_step == step) return i;
  }
  return std::nullopt;
}

uint64_t EventLog::SeqForStep(int64_t from_step) const {
  absl::MutexLock lock(&mu_);
  if (from_step <= 1) return 0;
  for (const SessionEventRecord& e : events_) {
    if (e.kind == Kind::kStep && e.step.step >= from_step) {
      // Include the state events just before the first wanted step.
      uint64_t seq = e.seq;
      while (seq > 0 && events_[seq - 1].kind != Kind::kStep) --seq;
      return seq;
    }
  }
  return events_.size();
}

void EventLog::Read(uint64_t from, size_t max, std::vector<SessionEventRecord>* out,
                    bool* ended) const {
  absl::MutexLock lock(&mu_);
  const size_t before = out->size();
  for (uint64_t seq = from; seq < events_.size() && out->size() - before < max; ++seq) {
    out->push_back(events_[seq]);
  }
  *ended = !open_ && from + (out->size() - before) >= events_.size();
}

void EventLog::SetOpen(bool open) {
  std::vector<std::function<void()>> wakes;
  {
    absl::MutexLock lock(&mu_);
    open_ = open;
    wakes = DueWakesLocked();
  }
  notifier_->Post(std::move(wakes));
}

int64_t EventLog::WakeWhenAvailable(uint64_t from, std::function<void()> wake) {
  {
    absl::MutexLock lock(&mu_);
    if (open_ && from >= events_.size()) {
      const int64_t token = next_token_++;
      waiters_.push_back({token, from, std::move(wake)});
      return token;
    }
  }
  wake();
  return 0;
}

void EventLog::CancelWake(int64_t token) {
  absl::MutexLock lock(&mu_);
  waiters_.erase(std::remove_if(waiters_.begin(), waiters_.end(),
                                [&](const Waiter& w) { return w.token == token; }),
                 waiters_.end());
}

std::vector<std::function<void()>> EventLog::DueWakesLocked() {
  std::vector<Waiter> keep;
  std::vector<std::function<void()>> wakes;
  for (Waiter& w : waiters_) {
    if (w.from < events_.size() || !open_) {
      wakes.push_back(std::move(w.wake));
    } else {
      keep.push_back(std::move(w));
    }
  }
  waiters_.swap(keep);
  return wakes;
}

}  // namespace anerd::sessions
