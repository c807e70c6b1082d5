// The dashboard's JSON documents (server/ui/ui_server.h), built from the engine's own types. No
// daemon-side paths appear in them (the page may be served beyond loopback, like TCP clients,
// which never see them either).
//
// Thread-safety: pure functions.
#ifndef ANERD_SERVER_UI_UI_JSON_H_
#define ANERD_SERVER_UI_UI_JSON_H_

#include <cstdint>
#include <string>
#include <vector>

#include "server/engine/engine.h"
#include "server/probes/probe_store.h"
#include "server/sessions/session_manager.h"

namespace anerd::ui {

// The dashboard's own counters, shown with the daemon status.
struct UiCounters {
  size_t clients = 0;           // open event streams
  uint64_t dropped_total = 0;   // frames dropped for slow pages since start
  uint64_t client_dropped = 0;  // of which for the page receiving the document
};

// {"sessions": [{id, name, backend, owner, state, step, total_steps, last_loss, best_loss,
// best_val_loss, best_val_step, elapsed_seconds, eta_seconds, checkpoint_step, error,
// model: {name, dim, hidden, layers, heads, kv_heads, vocab, seq}, lr, accum, eval_every,
// last_sample: {step, prompt, text, tokens} | null}]}, ordered as given.
std::string SessionsJson(const std::vector<sessions::SessionSnapshot>& sessions);

// {"session": ID, "events": [event lines as sessions/event_codec.h writes them], "next": SEQ,
// "ended": BOOL}: the events' named step fields pass through unchanged, so a field added to the
// step event reaches the page without a change here.
std::string EventsJson(const std::string& session_id,
                       const std::vector<sessions::SessionEventRecord>& events, uint64_t next,
                       bool ended);

// {"version", "os", "uptime_seconds", "default_backend", "backends": [...], "workers": [...],
// "cache": {...}, "unavailable_backends": [...], "ui": {clients, dropped_total, client_dropped}}:
// what GetInfo reports, without paths.
std::string InfoJson(const engine::DaemonInfo& info, const UiCounters& counters);

// {"probes": [probe documents as probes::ProbeResultToJson writes them, plus "owner"]}.
std::string ProbesJson(const std::vector<probes::ProbeResult>& results);

// {"error": MESSAGE}.
std::string ErrorJson(const std::string& message);

}  // namespace anerd::ui

#endif  // ANERD_SERVER_UI_UI_JSON_H_
