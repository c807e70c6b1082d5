#include "server/ui/ui_hub.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/ui/ui_json.h"

namespace anerd::ui {

std::string SseFrame(const std::string& event, const std::string& json) {
  return absl::StrCat("event: ", event, "\ndata: ", json, "\n\n");
}

UiSources UiSourcesFor(engine::Engine* engine) {
  UiSources s;
  s.list_sessions = [engine] { return engine->sessions().List(); };
  s.next_seq = [engine](const std::string& id) { return engine->sessions().NextSeq(id); };
  s.read_events = [engine](const std::string& id, uint64_t from, size_t max,
                           std::vector<sessions::SessionEventRecord>* out, bool* ended) {
    return engine->sessions().ReadEvents(id, from, max, out, ended);
  };
  s.info = [engine] { return engine->Info(); };
  return s;
}

UiHub::UiHub(UiSources sources, UiHubOptions options)
    : sources_(std::move(sources)), options_(options) {}

UiHub::~UiHub() { Stop(); }

void UiHub::Start() {
  thread_ = std::thread([this] { Run(); });
}

void UiHub::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (const std::shared_ptr<Client>& c : clients_) c->buffer.Close();
    clients_.clear();
  }
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<UiHub::Client> UiHub::Connect() {
  absl::MutexLock lock(&mu_);
  if (stopping_ || clients_.size() >= options_.max_clients) return nullptr;
  auto client = std::make_shared<Client>(options_);
  clients_.insert(client);
  if (!last_sessions_.empty()) PushTo(*client, last_sessions_);
  if (have_info_) PushStatus(*client);
  return client;
}

void UiHub::Disconnect(const std::shared_ptr<Client>& client) {
  client->buffer.Close();
  absl::MutexLock lock(&mu_);
  clients_.erase(client);
}

size_t UiHub::clients() const {
  absl::MutexLock lock(&mu_);
  return clients_.size();
}

void UiHub::Run() {
  for (;;) {
    Tick();
    absl::MutexLock lock(&mu_);
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.tick)) return;
  }
}

std::string UiHub::ReadNew(const std::string& id) {
  auto cursor = cursors_.find(id);
  if (cursor == cursors_.end()) {
    // First sight: stream from now on; pages read what came before from the events endpoint.
    absl::StatusOr<uint64_t> next = sources_.next_seq(id);
    if (!next.ok()) return "";
    cursor = cursors_.emplace(id, *next).first;
  }
  std::vector<sessions::SessionEventRecord> events;
  bool ended = false;
  if (!sources_.read_events(id, cursor->second, options_.max_events_per_frame, &events, &ended)
           .ok() ||
      events.empty()) {
    return "";
  }
  cursor->second = events.back().seq + 1;
  return SseFrame("events", EventsJson(id, events, cursor->second, ended));
}

void UiHub::Tick() {
  const std::vector<sessions::SessionSnapshot> sessions = sources_.list_sessions();
  std::vector<std::string> frames;
  std::map<std::string, uint64_t> seen;
  for (const sessions::SessionSnapshot& s : sessions) {
    std::string frame = ReadNew(s.id);
    if (!frame.empty()) frames.push_back(std::move(frame));
    if (auto it = cursors_.find(s.id); it != cursors_.end()) seen.insert(*it);
  }
  cursors_ = std::move(seen);  // deleted sessions are forgotten
  std::string sessions_frame = SseFrame("sessions", SessionsJson(sessions));
  const absl::Time now = absl::Now();
  const bool status_due = now - last_status_ >= options_.status_every;
  engine::DaemonInfo info;
  if (status_due) {
    info = sources_.info();
    last_status_ = now;
  }
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  if (sessions_frame != last_sessions_) {
    Broadcast(sessions_frame);
    last_sessions_ = std::move(sessions_frame);
  }
  for (const std::string& frame : frames) Broadcast(frame);
  if (status_due) {
    last_info_ = std::move(info);
    have_info_ = true;
    for (const std::shared_ptr<Client>& c : clients_) PushStatus(*c);
  }
}

void UiHub::Broadcast(const std::string& frame) {
  for (const std::shared_ptr<Client>& c : clients_) PushTo(*c, frame);
}

void UiHub::PushTo(Client& client, std::string frame) {
  const size_t dropped = client.buffer.Push(std::move(frame));
  if (dropped > 0) dropped_->fetch_add(dropped);
}

void UiHub::PushStatus(Client& client) {
  UiCounters counters;
  counters.clients = clients_.size();
  counters.dropped_total = dropped_->load();
  counters.client_dropped = client.buffer.dropped();
  PushTo(client, SseFrame("status", InfoJson(last_info_, counters)));
}

}  // namespace anerd::ui
