// ProbeStore: completed probe runs persisted in the state dir's anerd.db.
//
// Each result is one row of table `probe_results(id, probe, backend, created_ms, document, owner)`
// whose `owner` is the client that ran it (schema 2; "" for older rows) and whose `document` is the
// JSON form of ProbeResult (ProbeResultToJson: options, fingerprint, rows,
// summary), so the rows and findings read back exactly as they were streamed. It is a table
// adapter over the state dir's store (server/store/store.h), which owns the connection and the
// schema (server/store/migrations.cc).
//
// Thread-safety: all methods may be called from any thread (the store's lock serialises the
// connection). Returned results are copies.
#ifndef ANERD_SERVER_PROBES_PROBE_STORE_H_
#define ANERD_SERVER_PROBES_PROBE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/probes/probe.h"

namespace anerd::store {
class Store;
}

namespace anerd::probes {

// Version of the JSON document layout (also what `anectl probe --json` reports).
inline constexpr int kProbeDocumentVersion = 1;

struct ProbeResult {
  std::string id;          // "20261128-153012-a3f9": creation time (UTC) + 16 random bits
  int64_t created_ms = 0;  // unix ms
  ProbeOptions options;
  Fingerprint fingerprint;
  std::vector<ProbeRow> rows;
  ProbeSummary summary;
  // The client that ran it ("token:alice", "uid:501"; "" = none recorded). Stored in its own
  // column, not in the JSON document.
  std::string owner;
};

// The NOT_FOUND every call naming an unknown result id gets.
absl::Status ProbeResultNotFound(const std::string& id);

// A fresh id for a result created at `unix_ms`.
std::string NewProbeResultId(int64_t unix_ms);

std::string ProbeResultToJson(const ProbeResult& result);
// DATA_LOSS naming the problem for a document that is not a probe result of a known version.
absl::StatusOr<ProbeResult> ProbeResultFromJson(absl::string_view json);

class ProbeStore {
 public:
  // An adapter over `store` (not owned; must outlive the adapter).
  static absl::StatusOr<std::unique_ptr<ProbeStore>> Open(store::Store* store);
  // An adapter over a store of its own: store::Store::Open(state_dir) (for tools and tests).
  static absl::StatusOr<std::unique_ptr<ProbeStore>> Open(const std::string& state_dir);
  ~ProbeStore();
  ProbeStore(const ProbeStore&) = delete;
  ProbeStore& operator=(const ProbeStore&) = delete;

  // Inserts `result` (INVALID_ARGUMENT for an empty id, ALREADY_EXISTS for a used one).
  absl::Status Put(const ProbeResult& result);
  // NOT_FOUND naming the id.
  absl::StatusOr<ProbeResult> Get(const std::string& id) const;
  // Results, newest first, optionally only those of probe `probe` ("" = all) and only those owned
  // by `owner` ("" = every owner), at most `limit`.
  absl::StatusOr<std::vector<ProbeResult>> List(const std::string& probe, int limit,
                                                const std::string& owner = "") const;

 private:
  ProbeStore(store::Store* store, std::unique_ptr<store::Store> owned);

  std::unique_ptr<store::Store> owned_;  // set by Open(state_dir)
  store::Store* const store_;
};

}  // namespace anerd::probes

#endif  // ANERD_SERVER_PROBES_PROBE_STORE_H_
