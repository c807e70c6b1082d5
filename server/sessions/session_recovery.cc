#include "server/sessions/session_recovery.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "server/training/model_io.h"

namespace anerd::sessions {
namespace {

using Json = nlohmann::json;

constexpr int64_t kMaxManifestBytes = 1 << 20;
constexpr char kCheckpointName[] = "checkpoint.bin";

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string Text(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// The manifest's fields; NOT_FOUND / DATA_LOSS naming the file.
absl::StatusOr<RecoveredSession> ReadManifest(const std::string& path) {
  ANERD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, kMaxManifestBytes));
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::DataLossError(absl::StrCat(path, " is not a JSON object"));
  const std::string spec_text = Text(j, "spec");
  if (spec_text.empty()) return absl::DataLossError(absl::StrCat(path, " holds no spec"));
  absl::StatusOr<training::TrainSpec> spec = training::SpecFromText(spec_text);
  if (!spec.ok()) {
    return absl::DataLossError(absl::StrCat(path, ": unreadable spec: ", spec.status().message()));
  }
  RecoveredSession r;
  r.name = Text(j, "name");
  r.backend = Text(j, "backend");
  auto started = j.find("started_ms");
  if (started != j.end() && started->is_number_integer()) r.started_ms = started->get<int64_t>();
  r.spec = *std::move(spec);
  r.total_steps = r.spec.steps;
  return r;
}

}  // namespace

absl::Status WriteSessionManifest(const std::string& session_dir, const std::string& id,
                                  const std::string& name, const std::string& backend,
                                  int64_t started_ms, const training::TrainSpec& spec) {
  const Json j = {{"id", id},
                  {"name", name},
                  {"backend", backend},
                  {"started_ms", started_ms},
                  {"spec", training::SpecToText(spec)}};
  // Names come from clients: replace invalid UTF-8 rather than throw.
  return WriteFileAtomically(session_dir + "/" + kSessionManifestName,
                             j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n", 0600);
}

std::vector<std::string> OrphanSessionDirs(const std::string& state_dir,
                                           const std::set<std::string>& known) {
  std::vector<std::string> out;
  const std::string dir = state_dir + "/sessions";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    struct stat st;
    if (name == "." || name == ".." || known.count(name) != 0) continue;
    if (::lstat((dir + "/" + name).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) out.push_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<RecoveredSession> RecoverSessionDir(const std::string& state_dir,
                                                   const std::string& id) {
  const std::string dir = absl::StrCat(state_dir, "/sessions/", id);
  absl::StatusOr<RecoveredSession> manifest = ReadManifest(dir + "/" + kSessionManifestName);
  RecoveredSession r;
  if (manifest.ok()) r = *std::move(manifest);
  r.id = id;
  if (r.name.empty()) r.name = id;
  const std::string checkpoint = dir + "/" + kCheckpointName;
  absl::StatusOr<training::Checkpoint> ck =
      IsFile(checkpoint) ? training::ReadCheckpoint(checkpoint)
                         : absl::NotFoundError(checkpoint + " does not exist");
  if (ck.ok()) {
    if (!manifest.ok()) r.spec = ck->spec;
    r.checkpoint_path = checkpoint;
    r.checkpoint_step = ck->state.step;
    r.total_steps = std::max(ck->state.total_steps, r.total_steps);
    r.last_loss = ck->state.last_loss;
  }
  if (!manifest.ok() && !ck.ok()) {
    return absl::NotFoundError(absl::StrCat(
        "session directory ", dir, " holds no readable manifest (", manifest.status().message(),
        ") and no readable "
        "checkpoint (",
        ck.status().message(), ")"));
  }
  if (r.started_ms == 0) {
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0) r.started_ms = static_cast<int64_t>(st.st_mtime) * 1000;
  }
  return r;
}

std::string StoredCheckpointPath(const std::string& state_dir, const std::string& path) {
  const std::string prefix = state_dir + "/";
  if (absl::StartsWith(path, prefix)) return path.substr(prefix.size());
  return path;
}

std::string ResolveCheckpointPath(const std::string& state_dir, const std::string& id,
                                  const std::string& stored) {
  if (stored.empty()) return stored;
  if (stored[0] != '/') return state_dir + "/" + stored;
  const std::string own_dir = absl::StrCat(state_dir, "/sessions/", id, "/");
  if (absl::StartsWith(stored, own_dir)) return stored;
  const std::string own = own_dir + stored.substr(stored.find_last_of('/') + 1);
  return IsFile(own) ? own : stored;
}

}  // namespace anerd::sessions
