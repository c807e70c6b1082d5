// What a session directory (<state_dir>/sessions/<id>/) tells about its session without the
// database: used to rebuild session records when anerd.db was lost or corrupt, and to keep
// checkpoint paths independent of where the state dir lives.
//
// A session directory holds `session.json` (the manifest, written once when the session starts:
// id, name, backend, started_ms and the spec), `events.jsonl` and, once one was written,
// `checkpoint.bin` (which carries its own spec and training state).
//
// Thread-safety: pure functions over the filesystem; call from any thread.
#ifndef ANERD_SERVER_SESSIONS_SESSION_RECOVERY_H_
#define ANERD_SERVER_SESSIONS_SESSION_RECOVERY_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/training/config.h"

namespace anerd::sessions {

inline constexpr char kSessionManifestName[] = "session.json";

struct RecoveredSession {
  std::string id, name, backend;  // backend "" = unknown (the manifest was missing)
  training::TrainSpec spec;
  int64_t started_ms = 0;
  int64_t total_steps = 0;
  std::string checkpoint_path;  // absolute; "" when the directory holds no readable checkpoint
  int64_t checkpoint_step = 0;
  double last_loss = 0;
};

// Writes <session_dir>/session.json atomically (0600).
absl::Status WriteSessionManifest(const std::string& session_dir, const std::string& id,
                                  const std::string& name, const std::string& backend,
                                  int64_t started_ms, const training::TrainSpec& spec);

// Names of the directories under <state_dir>/sessions that are not in `known`, sorted.
std::vector<std::string> OrphanSessionDirs(const std::string& state_dir,
                                           const std::set<std::string>& known);

// Rebuilds session `id` from its directory: the manifest and/or the checkpoint. NOT_FOUND (naming
// the directory) when it holds neither a readable manifest nor a readable checkpoint.
absl::StatusOr<RecoveredSession> RecoverSessionDir(const std::string& state_dir,
                                                   const std::string& id);

// Checkpoint paths are stored relative to the state dir ("sessions/<id>/checkpoint.bin") so a
// copied or moved state dir uses its own files. `path` under `state_dir` becomes relative;
// anything else is kept as it is.
std::string StoredCheckpointPath(const std::string& state_dir, const std::string& path);
// The absolute path for a stored one: relative paths are joined to `state_dir`. An absolute path
// (written by older versions) whose file lies in another state dir is redirected to this session's
// own directory when the file of the same name exists there (a copied state dir).
std::string ResolveCheckpointPath(const std::string& state_dir, const std::string& id,
                                  const std::string& stored);

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_SESSION_RECOVERY_H_
