// EventLog: one session's event log, in memory and in sessions/<id>/events.jsonl (the line format
// is event_codec.h). It numbers records with a gap-free sequence (seq = index), appends them to
// the file (fsynced when asked), repairs the file on load and wakes watchers.
//
// Load cuts a torn tail (a write cut short by a crash or a full disk); a damaged line before the
// tail is reported, the original file is kept as events.jsonl.corrupt and the file is rewritten
// with the valid records. Records are renumbered 0, 1, ... (an append that failed on a full disk
// leaves a gap in the file's seq).
//
// Watching: while the log is open (its session is active) a watcher waiting for seq `from` is
// woken once that record exists; closing the log wakes every watcher. Wakes run on the Notifier's
// thread, never under this log's lock.
//
// Thread-safety: every method may be called from any thread; the log has its own lock, taken
// after the session manager's and never held while calling out.
#ifndef ANERD_SERVER_SESSIONS_EVENT_LOG_H_
#define ANERD_SERVER_SESSIONS_EVENT_LOG_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/sessions/event_codec.h"
#include "server/sessions/notifier.h"

namespace anerd::sessions {

class EventLog {
 public:
  // `path`: the log file; `notifier` (not owned) must outlive the log; `session_id` names the
  // session in log messages.
  EventLog(std::string path, Notifier* notifier, std::string session_id);
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Reads the file (a missing file is an empty log) and repairs it as described above. Returns
  // the damage found ("<path> line N: <why>"), or the read error's message; "" when clean.
  std::string Load();

  // Numbers the event (seq = size()), stamps it (unix ms, when unset), keeps it in memory and
  // appends it to the file, fsynced when `sync`. A write error is logged and returned (the event
  // stays in memory; the file is cut back to its previous end, so no torn record stays behind).
  absl::Status Append(SessionEventRecord event, bool sync = false);
  // Keeps the first `n` records and rewrites the file with them (atomically).
  absl::Status Truncate(size_t n);
  // Forgets every record and empties the file.
  void Clear();

  uint64_t size() const;
  // The last step reported (0 if none).
  int64_t LastReportedStep() const;
  // The seq of the last checkpoint record written for `step`.
  std::optional<uint64_t> FindCheckpoint(int64_t step) const;
  // The first seq at or after step `from_step`, including the state events just before it
  // (0 for from_step <= 1).
  uint64_t SeqForStep(int64_t from_step) const;
  // Copies up to `max` records from seq `from`. `ended` is set when the log is closed and no
  // record at or after `from` remains unread.
  void Read(uint64_t from, size_t max, std::vector<SessionEventRecord>* out, bool* ended) const;

  // Open while the session is active. Closing wakes every watcher.
  void SetOpen(bool open);
  // Calls `wake` once, from the notifier thread (or right here when a record at or after `from`
  // exists or the log is closed: then 0 is returned). Otherwise returns a token for CancelWake.
  int64_t WakeWhenAvailable(uint64_t from, std::function<void()> wake);
  void CancelWake(int64_t token);

 private:
  struct Waiter {
    int64_t token;
    uint64_t from;
    std::function<void()> wake;
  };
  // Takes the wakes now due; post them after unlocking.
  std::vector<std::function<void()>> DueWakesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RewriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  Notifier* const notifier_;
  const std::string session_id_;
  mutable absl::Mutex mu_;
  std::vector<SessionEventRecord> events_ ABSL_GUARDED_BY(mu_);
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_EVENT_LOG_H_
