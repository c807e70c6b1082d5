// Notifier: one thread that runs watcher wakes, so that a wake (which calls back into the session
// manager) never runs under a session's or an event log's lock. Being a plain serial task queue,
// it also runs blocking I/O off the device executors: the session manager's session_io_ and
// rpc_io_, the kernel manager's store thread. It catches nothing: a task must not throw.
//
// Thread-safety: Post may be called from any thread, also while holding other locks (it takes
// only the notifier's own). Wakes run in the order posted. The destructor runs the wakes still
// queued, then joins the thread.
#ifndef ANERD_SERVER_SESSIONS_NOTIFIER_H_
#define ANERD_SERVER_SESSIONS_NOTIFIER_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace anerd::sessions {

class Notifier {
 public:
  Notifier();
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  void Post(std::vector<std::function<void()>> wakes);

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_NOTIFIER_H_
