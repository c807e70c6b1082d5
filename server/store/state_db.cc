#include "server/store/state_db.h"

#include <dirent.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/atomic_file.h"
#include "common/hash.h"
#include "spdlog/spdlog.h"

namespace anerd::store {
namespace {

// Entries of `dir` (not "." or "..") for which `keep(dir/name, stat)` holds; missing dir = 0.
template <typename Keep>
int64_t CountEntries(const std::string& dir, Keep keep) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  int64_t n = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    struct stat st;
    if (name == "." || name == ".." || ::lstat((dir + "/" + name).c_str(), &st) != 0) continue;
    n += keep(dir + "/" + name, name, st) ? 1 : 0;
  }
  ::closedir(d);
  return n;
}

int64_t CountSessionDirs(const std::string& state_dir) {
  return CountEntries(state_dir + "/sessions",
                      [](const std::string&, const std::string&, const struct stat& st) {
                        return S_ISDIR(st.st_mode);
                      });
}

int64_t CountBlobs(const std::string& state_dir) {
  int64_t blobs = 0;
  CountEntries(state_dir + "/blobs",
               [&](const std::string& path, const std::string&, const struct stat& st) {
                 if (!S_ISDIR(st.st_mode)) return false;
                 blobs += CountEntries(
                     path, [](const std::string&, const std::string& name, const struct stat& f) {
                       return S_ISREG(f.st_mode) && IsSha256Hex(name);
                     });
                 return true;
               });
  return blobs;
}

// -1 when missing.
int64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

struct Verdict {
  bool corrupt = false;
  std::string detail;     // what SQLite said
  absl::Status unusable;  // cannot even tell (permissions, locks): refuse to start
};

// Opens `path` without creating it and runs PRAGMA quick_check.
Verdict QuickCheck(const std::string& path) {
  Verdict v;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc == SQLITE_OK) {
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000);
  }
  sqlite3_stmt* stmt = nullptr;
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &stmt, nullptr);
  std::string first_row;
  int rows = 0;
  while (rc == SQLITE_OK || rc == SQLITE_ROW) {
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) break;
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    if (rows++ == 0 && text != nullptr) first_row = reinterpret_cast<const char*>(text);
  }
  const std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  sqlite3_finalize(stmt);
  sqlite3_close_v2(db);
  switch (rc & 0xff) {
    case SQLITE_DONE:
      v.corrupt = !(rows == 1 && first_row == "ok");
      v.detail = absl::StrCat("quick_check reported: ", first_row, rows > 1 ? " (and more)" : "");
      return v;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      v.corrupt = true;
      v.detail = message;
      return v;
    default:
      v.unusable = absl::FailedPreconditionError(absl::StrCat(
          "cannot check the state database ", path, ": ", message,
          "; fix its permissions or stop the process holding it, then start anerd again"));
      return v;
  }
}

// Renames `db` and its -wal/-shm companions to <db>.corrupt-<time>[-wal|-shm].
absl::StatusOr<std::string> MoveAside(const std::string& state_dir, const std::string& db) {
  const std::string stamp = absl::FormatTime("%Y%m%dT%H%M%SZ", absl::Now(), absl::UTCTimeZone());
  const std::string target = absl::StrCat(db, ".corrupt-", stamp);
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const std::string from = db + suffix, to = target + suffix;
    if (std::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
      return absl::ErrnoToStatus(
          errno, absl::StrCat("the state database ", db, " is corrupt and cannot be moved to ", to,
                              "; move it aside by hand (anerd then rebuilds the registry from "
                              "the session directories) or restore it from a backup"));
    }
  }
  SyncDirectory(state_dir).IgnoreError();  // the rename happened; durability is best effort
  return target;
}

// Findings for databases moved aside by earlier starts (they stay findings until deleted).
std::vector<std::string> EarlierMovedAside(const std::string& state_dir) {
  std::vector<std::string> findings;
  CountEntries(state_dir, [&](const std::string& path, const std::string& name,
                              const struct stat& st) {
    if (S_ISREG(st.st_mode) && absl::StartsWith(name, "anerd.db.corrupt-") &&
        !absl::EndsWith(name, "-wal") && !absl::EndsWith(name, "-shm")) {
      findings.push_back(absl::StrCat("a corrupt state database was moved aside to ", path,
                                      " by an earlier start; delete it (and its -wal/-shm) once "
                                      "nothing in it is needed"));
    }
    return false;
  });
  std::sort(findings.begin(), findings.end());
  return findings;
}

}  // namespace

absl::StatusOr<StateDbCheck> CheckStateDb(const std::string& state_dir) {
  StateDbCheck check;
  check.findings = EarlierMovedAside(state_dir);
  const std::string db = state_dir + "/anerd.db";
  const int64_t size = FileSize(db), wal = FileSize(db + "-wal");
  if (size <= 0 && wal <= 0) {
    const int64_t sessions = CountSessionDirs(state_dir), blobs = CountBlobs(state_dir);
    if (sessions == 0 && blobs == 0) return check;  // a fresh state dir
    check.registry_lost = true;
    check.findings.push_back(absl::StrCat(
        "the state database ", db, size < 0 ? " is missing" : " is empty (0 bytes)", " but ",
        sessions, " session directories and ", blobs,
        " blobs exist: the registry was lost; sessions are rebuilt from their directories, "
        "blobs are kept, kernels must be compiled again"));
    spdlog::error("STATE DATABASE LOST: {}", check.findings.back());
    return check;
  }
  const Verdict verdict = QuickCheck(db);
  if (!verdict.unusable.ok()) return verdict.unusable;
  if (!verdict.corrupt) return check;
  spdlog::error("STATE DATABASE CORRUPT: {}: {}", db, verdict.detail);
  absl::StatusOr<std::string> moved = MoveAside(state_dir, db);
  if (!moved.ok()) {
    spdlog::critical("{}", std::string(moved.status().message()));
    return moved.status();
  }
  check.registry_lost = true;
  check.moved_to = *moved;
  check.findings.push_back(absl::StrCat(
      "the state database ", db, " was corrupt (", verdict.detail, "); it was moved to ", *moved,
      " and the registry was rebuilt: sessions from their directories, blobs kept, kernels must "
      "be compiled again; probe history is in the moved file"));
  spdlog::error("STATE DATABASE CORRUPT: {}", check.findings.back());
  return check;
}

}  // namespace anerd::store
