// UiHub: the dashboard's feed. One thread ("ui feed") polls the engine's existing read APIs —
// the session list and each session's event log (SessionManager::List / NextSeq / ReadEvents, the
// calls WatchSession uses) and the daemon status (Engine::Info) — every `tick`, and fans what is
// new out to every connected page as server-sent-event frames:
//   event: sessions  data: ui_json.h SessionsJson        (when it changed, at most every tick)
//   event: events    data: ui_json.h EventsJson          (a session's new events, in seq order)
//   event: status    data: ui_json.h InfoJson            (every `status_every`, per page: it
//                                                          carries that page's dropped frames)
// It never touches a device executor, and nothing it does waits for a page: each page has its own
// bounded FrameBuffer (frame_buffer.h) and a page that reads too slowly loses its oldest frames,
// counted per page and in total (dropped_counter(), exported to Prometheus by the daemon).
//
// A page that wants history opens the stream first and then reads the events JSON endpoint: every
// event appended before its stream was registered is in the log it reads, every later one reaches
// its stream, so a page that merges both by seq misses nothing (it may see an event twice).
//
// Thread-safety: every public method may be called from any thread. The sources must outlive
// Stop().
#ifndef ANERD_SERVER_UI_UI_HUB_H_
#define ANERD_SERVER_UI_UI_HUB_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/engine.h"
#include "server/sessions/session_manager.h"
#include "server/ui/frame_buffer.h"

namespace anerd::ui {

struct UiHubOptions {
  absl::Duration tick = absl::Milliseconds(250);
  absl::Duration status_every = absl::Seconds(1);
  size_t max_clients = 8;          // open streams at once; more are refused
  size_t client_max_frames = 256;  // per page (FrameBuffer bounds)
  size_t client_max_bytes = size_t{4} << 20;
  size_t max_events_per_frame = 512;  // events read per session per tick
};

// What the hub reads. The daemon wires these to the engine (UiSourcesFor); tests may fake them.
struct UiSources {
  std::function<std::vector<sessions::SessionSnapshot>()> list_sessions;
  std::function<absl::StatusOr<uint64_t>(const std::string& id)> next_seq;
  std::function<absl::Status(const std::string& id, uint64_t from, size_t max,
                             std::vector<sessions::SessionEventRecord>* out, bool* ended)>
      read_events;
  std::function<engine::DaemonInfo()> info;
};

// The engine's read APIs as UiSources (`engine` not owned; must outlive the hub).
UiSources UiSourcesFor(engine::Engine* engine);

class UiHub {
 public:
  struct Client {
    explicit Client(const UiHubOptions& o) : buffer(o.client_max_frames, o.client_max_bytes) {}
    FrameBuffer buffer;
  };

  UiHub(UiSources sources, UiHubOptions options);
  ~UiHub();  // Stop()

  UiHub(const UiHub&) = delete;
  UiHub& operator=(const UiHub&) = delete;

  // Starts the feed thread.
  void Start();
  // Closes every page's stream and joins the feed thread. Idempotent.
  void Stop();

  // Registers a page's stream; nullptr when max_clients are open or the hub stopped. The first
  // frames it gets are the current session list and status.
  std::shared_ptr<Client> Connect();
  void Disconnect(const std::shared_ptr<Client>& client);

  size_t clients() const;
  // Frames dropped for slow pages since start (shared so a metrics scrape may outlive the hub).
  std::shared_ptr<const std::atomic<uint64_t>> dropped_counter() const { return dropped_; }

  // One round of the feed (what the thread does every tick; public for tests).
  void Tick();

 private:
  void Run();
  void Broadcast(const std::string& frame) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PushTo(Client& client, std::string frame) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PushStatus(Client& client) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // New events of session `id` since its cursor, as one frame ("" when none).
  std::string ReadNew(const std::string& id);

  const UiSources sources_;
  const UiHubOptions options_;
  std::shared_ptr<std::atomic<uint64_t>> dropped_ = std::make_shared<std::atomic<uint64_t>>(0);
  std::map<std::string, uint64_t> cursors_;        // next seq per session; feed thread only
  absl::Time last_status_ = absl::InfinitePast();  // feed thread only

  mutable absl::Mutex mu_;
  std::set<std::shared_ptr<Client>> clients_ ABSL_GUARDED_BY(mu_);
  std::string last_sessions_ ABSL_GUARDED_BY(mu_);     // the latest sessions frame
  engine::DaemonInfo last_info_ ABSL_GUARDED_BY(mu_);  // for the first status of new pages
  bool have_info_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// "event: NAME\ndata: JSON\n\n" (JSON holds no raw newline: nlohmann and the event codec escape
// them).
std::string SseFrame(const std::string& event, const std::string& json);

}  // namespace anerd::ui

#endif  // ANERD_SERVER_UI_UI_HUB_H_
