#include "server/sessions/session_store.h"

#include <memory>
#include <utility>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/blocking_io_guard.h"
#include "common/status_macros.h"
#include "server/sessions/session_recovery.h"
#include "server/store/space_reserve.h"
#include "server/store/sqlite.h"
#include "spdlog/spdlog.h"

namespace anerd::sessions {

using store::Statement;

absl::StatusOr<std::vector<SessionRow>> SessionStore::LoadAll() const {
  absl::MutexLock lock(&store_->mu());
  ANERD_ASSIGN_OR_RETURN(
      auto q, Statement::Prepare(
                  store_->db().get(),
                  "SELECT id, name, backend, state, step, total_steps, last_loss, best_loss, "
                  "started_ms, elapsed_s, checkpoint_path, checkpoint_step, checkpoint_seq, "
                  "error, spec, owner, restarts, hosts FROM sessions"));
  std::vector<SessionRow> rows;
  while (true) {
    ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    SessionRow r;
    r.id = q->ColumnText(0);
    r.name = q->ColumnText(1);
    r.backend = q->ColumnText(2);
    r.state = StateFromName(q->ColumnText(3));
    r.step = q->ColumnInt(4);
    r.total_steps = q->ColumnInt(5);
    r.last_loss = q->ColumnDouble(6);
    r.best_loss = q->ColumnDouble(7);
    r.started_ms = q->ColumnInt(8);
    r.elapsed_seconds = q->ColumnDouble(9);
    r.checkpoint_path = ResolveCheckpointPath(store_->state_dir(), r.id, q->ColumnText(10));
    r.checkpoint_step = q->ColumnInt(11);
    r.checkpoint_seq = static_cast<uint64_t>(q->ColumnInt(12));
    r.error = q->ColumnText(13);
    r.owner = q->ColumnText(15);
    r.restarts = q->ColumnInt(16);
    std::vector<std::string> hosts = absl::StrSplit(q->ColumnText(17), ',', absl::SkipEmpty());
    r.hosts = std::move(hosts);
    absl::StatusOr<training::TrainSpec> spec = training::SpecFromText(q->ColumnText(14));
    if (!spec.ok()) {
      spdlog::warn("session {}: unreadable spec, skipped: {}", r.id, spec.status().ToString());
      continue;
    }
    r.spec = *std::move(spec);
    rows.push_back(std::move(r));
  }
  return rows;
}

absl::StatusOr<std::set<std::string>> SessionStore::Ids() const {
  absl::MutexLock lock(&store_->mu());
  ANERD_ASSIGN_OR_RETURN(auto q, Statement::Prepare(store_->db().get(), "SELECT id FROM sessions"));
  std::set<std::string> ids;
  while (true) {
    ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) return ids;
    ids.insert(q->ColumnText(0));
  }
}

namespace {

// INSERT OR REPLACE of `r` (call with the store's lock held).
absl::Status WriteRow(store::Store* store, const SessionRow& r) {
  ANERD_ASSIGN_OR_RETURN(
      auto q, Statement::Prepare(
                  store->db().get(),
                  "INSERT OR REPLACE INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  q->BindText(1, r.id);
  q->BindText(2, r.name);
  q->BindText(3, r.backend);
  q->BindText(4, SessionStateName(r.state));
  q->BindInt(5, r.step);
  q->BindInt(6, r.total_steps);
  q->BindDouble(7, r.last_loss);
  q->BindDouble(8, r.best_loss);
  q->BindInt(9, r.started_ms);
  q->BindDouble(10, r.elapsed_seconds);
  q->BindText(11, StoredCheckpointPath(store->state_dir(), r.checkpoint_path));
  q->BindInt(12, r.checkpoint_step);
  q->BindInt(13, static_cast<int64_t>(r.checkpoint_seq));
  q->BindText(14, r.error);
  q->BindText(15, training::SpecToText(r.spec));
  q->BindText(16, r.owner);
  q->BindInt(17, r.restarts);
  q->BindText(18, absl::StrJoin(r.hosts, ","));
  return q->Run();
}

}  // namespace

absl::Status SessionStore::Put(const SessionRow& r) {
  NoteBlockingIo("session row write " + r.id);
  absl::MutexLock lock(&store_->mu());
  if (r.state != SessionState::kPaused) return WriteRow(store_, r);
  // A session is paused because the disk is full: without the reserve its row would keep saying
  // `running`, and the next start would take it for interrupted and resume it into the same
  // error.
  return store::RunWithSpaceReserve(store_->state_dir(), [&] { return WriteRow(store_, r); });
}

absl::Status SessionStore::Delete(const std::string& id) {
  absl::MutexLock lock(&store_->mu());
  ANERD_ASSIGN_OR_RETURN(
      auto q, Statement::Prepare(store_->db().get(), "DELETE FROM sessions WHERE id = ?"));
  // Deleting frees space, so it must work on a full disk.
  return store::RunWithSpaceReserve(store_->state_dir(), [&] {
    q->Reset();
    q->BindText(1, id);
    return q->Run();
  });
}

}  // namespace anerd::sessions
