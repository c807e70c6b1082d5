// UiHub over fake sources: new events reach every page once, in seq order; a page that never
// reads loses frames (counted per page and in the shared counter) while the feed carries on and
// another page gets everything; deleted sessions are forgotten; Stop ends every stream.
#include "server/ui/ui_hub.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace anerd::ui {
namespace {

using Json = nlohmann::json;

struct FakeEngine {
  std::vector<sessions::SessionSnapshot> sessions;
  std::map<std::string, std::vector<sessions::SessionEventRecord>> logs;

  void AddStep(const std::string& id, int64_t step, double loss) {
    sessions::SessionEventRecord e;
    e.kind = sessions::SessionEventRecord::Kind::kStep;
    e.seq = logs[id].size();
    e.step.step = step;
    e.step.loss = loss;
    logs[id].push_back(e);
  }

  UiSources Sources() {
    UiSources s;
    s.list_sessions = [this] { return sessions; };
    s.next_seq = [this](const std::string& id) -> absl::StatusOr<uint64_t> {
      return logs[id].size();
    };
    s.read_events = [this](const std::string& id, uint64_t from, size_t max,
                           std::vector<sessions::SessionEventRecord>* out, bool* ended) {
      const auto& log = logs[id];
      for (uint64_t i = from; i < log.size() && out->size() < max; ++i) out->push_back(log[i]);
      *ended = false;
      return absl::OkStatus();
    };
    s.info = [] {
      engine::DaemonInfo info;
      info.version = "test";
      return info;
    };
    return s;
  }
};

sessions::SessionSnapshot Session(const std::string& id) {
  sessions::SessionSnapshot s;
  s.id = id;
  s.state = sessions::SessionState::kRunning;
  return s;
}

// The frames a page has queued, by event name.
std::vector<std::pair<std::string, Json>> Drain(UiHub::Client& client) {
  std::vector<std::pair<std::string, Json>> out;
  while (std::optional<std::string> frame = client.buffer.Pop(absl::ZeroDuration())) {
    const size_t nl = frame->find('\n');
    EXPECT_TRUE(absl::StartsWith(*frame, "event: ")) << *frame;
    EXPECT_TRUE(absl::EndsWith(*frame, "\n\n")) << *frame;
    const std::string name = frame->substr(7, nl - 7);
    const std::string data = frame->substr(nl + 1 + 6, frame->size() - nl - 1 - 6 - 2);
    out.emplace_back(name, Json::parse(data));
  }
  return out;
}

TEST(UiHubTest, NewEventsReachEveryPageInOrder) {
  FakeEngine fake;
  fake.sessions = {Session("s1")};
  fake.AddStep("s1", 1, 5.0);  // before the hub first sees s1: history, not streamed
  UiHub hub(fake.Sources(), UiHubOptions{});
  std::shared_ptr<UiHub::Client> page = hub.Connect();
  ASSERT_NE(page, nullptr);
  hub.Tick();
  fake.AddStep("s1", 2, 4.0);
  fake.AddStep("s1", 3, 3.5);
  hub.Tick();
  std::vector<int64_t> steps;
  bool saw_sessions = false, saw_status = false;
  for (const auto& [name, data] : Drain(*page)) {
    if (name == "sessions") saw_sessions = data["sessions"][0]["id"] == "s1";
    if (name == "status") saw_status = data["version"] == "test";
    if (name != "events") continue;
    EXPECT_EQ(data["session"], "s1");
    for (const Json& e : data["events"]) steps.push_back(e["step"]["step"]);
  }
  EXPECT_TRUE(saw_sessions);
  EXPECT_TRUE(saw_status);
  EXPECT_EQ(steps, (std::vector<int64_t>{2, 3}));
}

TEST(UiHubTest, APageThatNeverReadsLosesFramesAndTheCountIsShared) {
  FakeEngine fake;
  fake.sessions = {Session("s1")};
  UiHubOptions options;
  options.client_max_frames = 8;
  options.status_every = absl::InfiniteDuration();  // only events and session frames
  UiHub hub(fake.Sources(), options);
  std::shared_ptr<UiHub::Client> stuck = hub.Connect();
  std::shared_ptr<UiHub::Client> reader = hub.Connect();
  hub.Tick();  // the hub sees s1 (empty): everything from here on is streamed
  std::vector<int64_t> read_steps;
  for (int step = 1; step <= 100; ++step) {
    fake.AddStep("s1", step, 1.0 / step);
    hub.Tick();
    for (const auto& [name, data] : Drain(*reader)) {
      if (name != "events") continue;
      for (const Json& e : data["events"]) read_steps.push_back(e["step"]["step"]);
    }
  }
  EXPECT_EQ(read_steps.size(), 100u) << "the reading page must get every step";
  EXPECT_EQ(stuck->buffer.queued_frames(), 8u);
  EXPECT_GE(stuck->buffer.dropped(), 90u);
  EXPECT_EQ(reader->buffer.dropped(), 0u);
  EXPECT_EQ(hub.dropped_counter()->load(), stuck->buffer.dropped());
}

TEST(UiHubTest, StatusFramesTellEachPageItsOwnDroppedFrames) {
  FakeEngine fake;
  UiHubOptions options;
  options.client_max_frames = 2;
  options.status_every = absl::ZeroDuration();  // a status frame every tick
  UiHub hub(fake.Sources(), options);
  std::shared_ptr<UiHub::Client> page = hub.Connect();
  for (int i = 0; i < 5; ++i) hub.Tick();
  std::vector<std::pair<std::string, Json>> frames = Drain(*page);
  ASSERT_FALSE(frames.empty());
  const Json& last = frames.back().second;
  EXPECT_EQ(frames.back().first, "status");
  EXPECT_GT(last["ui"]["client_dropped"].get<uint64_t>(), 0u);
  EXPECT_EQ(last["ui"]["clients"], 1);
}

TEST(UiHubTest, ClientsAreBoundedAndStopEndsEveryStream) {
  FakeEngine fake;
  UiHubOptions options;
  options.max_clients = 2;
  UiHub hub(fake.Sources(), options);
  hub.Start();
  std::shared_ptr<UiHub::Client> a = hub.Connect(), b = hub.Connect();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(hub.Connect(), nullptr);
  hub.Disconnect(b);
  EXPECT_EQ(hub.clients(), 1u);
  EXPECT_NE(hub.Connect(), nullptr);
  hub.Stop();
  EXPECT_TRUE(a->buffer.closed());
  EXPECT_EQ(hub.Connect(), nullptr);
}

}  // namespace
}  // namespace anerd::ui
