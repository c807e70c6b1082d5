// libFuzzer target for the records read back from the state dir's database and session
// directories (issue 16): arbitrary column values (NULL, integers, reals, text, blobs, in any
// column) in the kernels, kernel_weights, kernel_owners and probe_results tables must be read,
// listed and deleted through the stores without crashing and without touching files outside the
// blob directory; arbitrary session specs, session manifests and stored checkpoint paths must be
// decoded or refused cleanly.
//
// Input: byte 0 picks the table family; the rest feeds FuzzedDataProvider.
#include <fuzzer/FuzzedDataProvider.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "server/cache/kernel_store.h"
#include "server/probes/probe_store.h"
#include "server/sessions/session_recovery.h"
#include "server/training/config.h"
#include "spdlog/spdlog.h"

namespace {

struct State {
  std::string root, dir;  // dir = root/state
  std::unique_ptr<anerd::cache::KernelStore> kernels;
  std::unique_ptr<anerd::probes::ProbeStore> probes;
  sqlite3* raw = nullptr;  // a second connection that writes the fuzzed rows
};

State& Get() {
  static State* state = [] {
    auto* s = new State;
    // On tmpfs when there is one: the stores fsync every commit (synchronous=FULL).
    struct stat shm;
    std::string templ = ::stat("/dev/shm", &shm) == 0 ? "/dev/shm/state_rows_fuzz.XXXXXX"
                                                      : "/tmp/state_rows_fuzz.XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) std::abort();
    s->root = templ;
    s->dir = templ + "/state";
    ::mkdir(s->dir.c_str(), 0700);
    spdlog::set_level(spdlog::level::off);
    s->kernels = std::move(anerd::cache::KernelStore::Open(s->dir)).value();
    s->probes = std::move(anerd::probes::ProbeStore::Open(s->dir)).value();
    if (sqlite3_open((s->dir + "/anerd.db").c_str(), &s->raw) != SQLITE_OK) std::abort();
    sqlite3_busy_timeout(s->raw, 5000);
    return s;
  }();
  return *state;
}

// Files a broken blob hash must never reach ("../" in a hash resolves to these).
const char* const kCanaries[] = {"/canary", "/state/canary", "/state/blobs/canary"};

void PlantCanaries(const State& s) {
  for (const char* c : kCanaries) std::ofstream(s.root + c) << "canary";
}

void CheckCanaries(const State& s) {
  struct stat st;
  for (const char* c : kCanaries) {
    if (::stat((s.root + c).c_str(), &st) != 0) std::abort();  // a store deleted it
  }
}

// Binds an arbitrary value of an arbitrary SQLite type to parameter `i`.
void BindAny(FuzzedDataProvider& in, sqlite3_stmt* stmt, int i) {
  switch (in.ConsumeIntegralInRange<int>(0, 4)) {
    case 0:
      sqlite3_bind_null(stmt, i);
      break;
    case 1:
      sqlite3_bind_int64(stmt, i, in.ConsumeIntegral<int64_t>());
      break;
    case 2:
      sqlite3_bind_double(stmt, i, in.ConsumeFloatingPoint<double>());
      break;
    case 3: {
      const std::string text = in.ConsumeRandomLengthString(96);
      sqlite3_bind_text(stmt, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
      break;
    }
    default: {
      const std::string blob = in.ConsumeRandomLengthString(96);
      sqlite3_bind_blob(stmt, i, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
    }
  }
}

// Inserts up to `max_rows` rows of `columns` fuzzed values with `sql` (constraint failures are
// fine: such rows cannot exist).
void InsertRows(FuzzedDataProvider& in, sqlite3* db, const char* sql, int columns, int max_rows) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) std::abort();
  const int rows = in.ConsumeIntegralInRange<int>(0, max_rows);
  for (int r = 0; r < rows; ++r) {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    for (int c = 1; c <= columns; ++c) BindAny(in, stmt, c);
    sqlite3_step(stmt);
  }
  sqlite3_finalize(stmt);
}

void FuzzKernelRows(FuzzedDataProvider& in, State& s) {
  sqlite3_exec(s.raw, "DELETE FROM kernels; DELETE FROM kernel_weights; DELETE FROM kernel_owners;",
               nullptr, nullptr, nullptr);
  InsertRows(in, s.raw,
             "INSERT INTO kernels (id, name, backend, options, mil_sha, mil_bytes, weight_bytes, "
             "signature, created_ms, last_used_ms, compile_ms, hits) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             12, 4);
  InsertRows(in, s.raw, "INSERT INTO kernel_weights (kernel_id, path, sha) VALUES (?, ?, ?)", 3, 6);
  InsertRows(in, s.raw, "INSERT INTO kernel_owners (kernel_id, owner) VALUES (?, ?)", 2, 4);
  PlantCanaries(s);
  (void)s.kernels->Count();
  for (const anerd::cache::KernelRecord& r : s.kernels->List()) {
    (void)s.kernels->Get(r.id);
    (void)s.kernels->Owners(r.id);
    (void)s.kernels->RecordUse(r.id, 1, 0, -1);
    if (in.ConsumeBool()) {
      (void)s.kernels->Release(r.id, in.ConsumeRandomLengthString(16));
    } else {
      (void)s.kernels->Delete(r.id);
    }
  }
  (void)s.kernels->CollectGarbage();
  CheckCanaries(s);
}

void FuzzProbeRows(FuzzedDataProvider& in, State& s) {
  sqlite3_exec(s.raw, "DELETE FROM probe_results;", nullptr, nullptr, nullptr);
  InsertRows(in, s.raw,
             "INSERT INTO probe_results (id, probe, backend, created_ms, document) "
             "VALUES (?, ?, ?, ?, ?)",
             5, 4);
  absl::StatusOr<std::vector<anerd::probes::ProbeResult>> all = s.probes->List("", 16);
  (void)s.probes->List(in.ConsumeRandomLengthString(16), 4);
  if (all.ok()) {
    for (const anerd::probes::ProbeResult& r : *all) (void)s.probes->Get(r.id);
  }
}

void FuzzSessionRecords(FuzzedDataProvider& in, State& s) {
  // The spec column (and a checkpoint's SPEC section) as stored.
  absl::StatusOr<anerd::training::TrainSpec> spec =
      anerd::training::SpecFromText(in.ConsumeRandomLengthString(512));
  // A spec that parses and validates (as every stored one did) must survive being stored again.
  if (spec.ok() && anerd::training::ValidateSpec(*spec).ok() &&
      !anerd::training::SpecFromText(anerd::training::SpecToText(*spec)).ok()) {
    std::abort();
  }
  // A stored checkpoint path.
  const std::string stored = in.ConsumeRandomLengthString(128);
  (void)anerd::sessions::ResolveCheckpointPath(s.dir, "fz", stored);
  (void)anerd::sessions::StoredCheckpointPath(s.dir, stored);
  // A session directory's manifest.
  const std::string session = s.dir + "/sessions/fz";
  ::mkdir((s.dir + "/sessions").c_str(), 0700);
  ::mkdir(session.c_str(), 0700);
  std::ofstream(session + "/session.json", std::ios::trunc) << in.ConsumeRemainingBytesAsString();
  (void)anerd::sessions::RecoverSessionDir(s.dir, "fz");
  (void)anerd::sessions::OrphanSessionDirs(s.dir, {});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  State& s = Get();
  FuzzedDataProvider in(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      FuzzKernelRows(in, s);
      break;
    case 1:
      FuzzProbeRows(in, s);
      break;
    default:
      FuzzSessionRecords(in, s);
  }
  return 0;
}
