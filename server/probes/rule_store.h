// RuleProbeStore: the ANE capability probe's results (issue 18 item 7), one per (chip, OS build),
// persisted in the state dir's anerd.db so that the rules a Mac measured apply at every start on
// that chip and OS build, and never on another (an OS update may change them: docs/ANE_NOTES.md
// §A.5).
//
// Table `ane_rule_probes(chip, os_build, backend, probed_ms, document)` (schema 7,
// server/store/migrations.cc); `document` is the rows as JSON (RuleProbeRecordToJson). A table
// adapter over the store (server/store/store.h), which owns the connection and the schema.
// Thread-safety: all methods may be called from any thread (the store's lock serialises them).
#ifndef ANERD_SERVER_PROBES_RULE_STORE_H_
#define ANERD_SERVER_PROBES_RULE_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/backend/backend.h"

namespace anerd::store {
class Store;
}

namespace anerd::probes {

struct RuleProbeRecord {
  std::string chip;       // backend::RuleProbeReport::chip (the key, with os_build)
  std::string os_build;   // backend::RuleProbeReport::os_build
  std::string backend;    // the backend that ran it ("ane", "ane-sim")
  int64_t probed_ms = 0;  // unix ms
  bool simulated = false;
  std::vector<backend::RuleMeasurement> rows;
};

// The JSON document of `record`'s rows, and its inverse: DATA_LOSS naming the problem for a
// document that is not one (never throws; at most 256 rows of 4 KiB fields are read).
std::string RuleProbeRowsToJson(const RuleProbeRecord& record);
absl::Status RuleProbeRowsFromJson(absl::string_view json, RuleProbeRecord* record);

class RuleProbeStore {
 public:
  // An adapter over `store` (not owned; must outlive the adapter).
  explicit RuleProbeStore(store::Store* store) : store_(store) {}

  // Stores `record`, replacing an older probe of the same (chip, OS build). INVALID_ARGUMENT for
  // an empty chip or OS build.
  absl::Status Put(const RuleProbeRecord& record);
  // The probe of exactly this (chip, OS build), if any.
  absl::StatusOr<std::optional<RuleProbeRecord>> Find(const std::string& chip,
                                                      const std::string& os_build) const;

 private:
  store::Store* const store_;
};

}  // namespace anerd::probes

#endif  // ANERD_SERVER_PROBES_RULE_STORE_H_
