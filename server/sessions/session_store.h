// SessionStore: the `sessions` table of anerd.db, a table adapter over the state dir's store
// (server/store/store.h owns the connection; the table's schema is migrations 5, 6 and 9 in
// server/store/migrations.cc). One row per session: what a restart needs to list the session and
// resume it (its event log and checkpoint live in its directory, session_recovery.h).
//
// Checkpoint paths are stored relative to the state dir (StoredCheckpointPath) and resolved
// against it when read, so a copied or moved state dir uses its own files.
//
// Thread-safety: every method may be called from any thread (the store's lock serialises the
// connection).
#ifndef ANERD_SERVER_SESSIONS_SESSION_STORE_H_
#define ANERD_SERVER_SESSIONS_SESSION_STORE_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/sessions/session.h"
#include "server/store/store.h"
#include "server/training/config.h"

namespace anerd::sessions {

struct SessionRow {
  std::string id, name, backend;
  std::string owner;  // "" = unowned (rows from before owners were recorded)
  SessionState state = SessionState::kQueued;
  int64_t step = 0, total_steps = 0, started_ms = 0, checkpoint_step = 0;
  uint64_t checkpoint_seq = 0;
  double last_loss = 0, best_loss = 0, elapsed_seconds = 0;
  std::string checkpoint_path;  // absolute
  std::string error;
  training::TrainSpec spec;
  int64_t restarts = 0;            // data-parallel: relaunches after faults
  std::vector<std::string> hosts;  // data-parallel: the latest launch's hosts
};

class SessionStore {
 public:
  // `store` (not owned) must outlive the adapter.
  explicit SessionStore(store::Store* store) : store_(store) {}

  // Every readable row. A row whose spec does not parse is skipped with a warning naming it.
  absl::StatusOr<std::vector<SessionRow>> LoadAll() const;
  // The ids of every row.
  absl::StatusOr<std::set<std::string>> Ids() const;
  // Inserts or replaces the row `row.id`; the row of a paused session is written with the space
  // reserve on a full disk (space_reserve.h).
  absl::Status Put(const SessionRow& row);
  // Removes the row; works on a full disk through the space reserve (space_reserve.h).
  absl::Status Delete(const std::string& id);

 private:
  store::Store* const store_;
};

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_SESSION_STORE_H_
