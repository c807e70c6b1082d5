// The ANE capability probe's persisted results (rule_store.h).
#include "server/probes/rule_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "server/store/sqlite.h"
#include "server/store/store.h"

namespace anerd::probes {
namespace {

constexpr size_t kMaxRows = 256;
constexpr size_t kMaxField = 4096;
constexpr int kDocumentVersion = 1;

// The string member `key` of `j`, or an error naming it.
absl::StatusOr<std::string> Text(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return absl::DataLossError(absl::StrCat("ANE rule probe document: '", key, "' is missing"));
  }
  std::string s = it->get<std::string>();
  if (s.size() > kMaxField) s.resize(kMaxField);
  return s;
}

}  // namespace

std::string RuleProbeRowsToJson(const RuleProbeRecord& record) {
  nlohmann::json rows = nlohmann::json::array();
  for (const backend::RuleMeasurement& m : record.rows) {
    rows.push_back({{"rule", m.rule},
                    {"expected", m.expected},
                    {"measured", m.measured},
                    {"agrees", m.agrees},
                    {"detail", m.detail}});
  }
  nlohmann::json doc = {
      {"version", kDocumentVersion}, {"simulated", record.simulated}, {"rows", rows}};
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::Status RuleProbeRowsFromJson(absl::string_view json, RuleProbeRecord* record) {
  const nlohmann::json doc = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::DataLossError("ANE rule probe document is not a JSON object");
  }
  auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() || *version != kDocumentVersion) {
    return absl::DataLossError("ANE rule probe document of an unknown version");
  }
  auto simulated = doc.find("simulated");
  record->simulated = simulated != doc.end() && simulated->is_boolean() && simulated->get<bool>();
  auto rows = doc.find("rows");
  if (rows == doc.end() || !rows->is_array() || rows->size() > kMaxRows) {
    return absl::DataLossError("ANE rule probe document: 'rows' is not a list of rows");
  }
  record->rows.clear();
  for (const nlohmann::json& r : *rows) {
    if (!r.is_object()) return absl::DataLossError("ANE rule probe document: a row is no object");
    backend::RuleMeasurement m;
    ANERD_ASSIGN_OR_RETURN(m.rule, Text(r, "rule"));
    ANERD_ASSIGN_OR_RETURN(m.expected, Text(r, "expected"));
    ANERD_ASSIGN_OR_RETURN(m.measured, Text(r, "measured"));
    ANERD_ASSIGN_OR_RETURN(m.detail, Text(r, "detail"));
    auto agrees = r.find("agrees");
    m.agrees = agrees != r.end() && agrees->is_boolean() && agrees->get<bool>();
    record->rows.push_back(std::move(m));
  }
  return absl::OkStatus();
}

absl::Status RuleProbeStore::Put(const RuleProbeRecord& record) {
  if (record.chip.empty() || record.os_build.empty()) {
    return absl::InvalidArgumentError(
        "an ANE rule probe is kept per chip and OS build: the device reported neither");
  }
  absl::MutexLock lock(&store_->mu());
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<store::Statement> q,
      store::Statement::Prepare(store_->db().get(),
                                "INSERT OR REPLACE INTO ane_rule_probes (chip, os_build, backend, "
                                "probed_ms, document) VALUES (?, ?, ?, ?, ?)"));
  q->BindText(1, record.chip);
  q->BindText(2, record.os_build);
  q->BindText(3, record.backend);
  q->BindInt(4, record.probed_ms);
  q->BindText(5, RuleProbeRowsToJson(record));
  return q->Run();
}

absl::StatusOr<std::optional<RuleProbeRecord>> RuleProbeStore::Find(
    const std::string& chip, const std::string& os_build) const {
  absl::MutexLock lock(&store_->mu());
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<store::Statement> q,
      store::Statement::Prepare(store_->db().get(),
                                "SELECT backend, probed_ms, document FROM ane_rule_probes WHERE "
                                "chip = ? AND os_build = ?"));
  q->BindText(1, chip);
  q->BindText(2, os_build);
  ANERD_ASSIGN_OR_RETURN(bool has_row, q->Step());
  if (!has_row) return std::optional<RuleProbeRecord>();
  RuleProbeRecord record;
  record.chip = chip;
  record.os_build = os_build;
  record.backend = q->ColumnText(0);
  record.probed_ms = q->ColumnInt(1);
  ANERD_RETURN_IF_ERROR(RuleProbeRowsFromJson(q->ColumnText(2), &record));
  return std::optional<RuleProbeRecord>(std::move(record));
}

}  // namespace anerd::probes
