// The session state machine (issue 17): one table of legal transitions, checked in one function.
#include "server/sessions/session.h"

#include <set>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd::sessions {
namespace {

using ::testing::HasSubstr;
using S = SessionState;

constexpr S kAll[] = {S::kQueued,  S::kCompiling, S::kRunning, S::kCheckpointing, S::kPaused,
                      S::kStopped, S::kCompleted, S::kFailed,  S::kInterrupted};

TEST(SessionStateTest, TheTransitionTableIsExactlyTheDocumentedOne) {
  // session.h's table, spelled out: every other change between two states is refused.
  const std::set<std::pair<S, S>> legal = {
      {S::kQueued, S::kCompiling},
      {S::kQueued, S::kStopped},
      {S::kQueued, S::kInterrupted},
      {S::kQueued, S::kFailed},
      {S::kCompiling, S::kRunning},
      {S::kCompiling, S::kStopped},
      {S::kCompiling, S::kInterrupted},
      {S::kCompiling, S::kFailed},
      {S::kRunning, S::kCheckpointing},
      {S::kRunning, S::kCompiling},
      {S::kRunning, S::kCompleted},
      {S::kRunning, S::kPaused},
      {S::kRunning, S::kStopped},
      {S::kRunning, S::kInterrupted},
      {S::kRunning, S::kFailed},
      {S::kCheckpointing, S::kRunning},
      {S::kCheckpointing, S::kPaused},
      {S::kCheckpointing, S::kStopped},
      {S::kCheckpointing, S::kInterrupted},
      {S::kCheckpointing, S::kFailed},
      {S::kPaused, S::kQueued},
      {S::kPaused, S::kStopped},
      {S::kPaused, S::kFailed},
      {S::kStopped, S::kQueued},
      {S::kStopped, S::kFailed},
      {S::kCompleted, S::kQueued},
      {S::kCompleted, S::kFailed},
      {S::kFailed, S::kQueued},
      {S::kInterrupted, S::kQueued},
      {S::kInterrupted, S::kFailed},
  };
  for (S from : kAll) {
    for (S to : kAll) {
      const bool want = from == to || legal.count({from, to}) != 0;
      EXPECT_EQ(IsLegalTransition(from, to), want)
          << SessionStateName(from) << " -> " << SessionStateName(to);
    }
  }
}

TEST(SessionStateTest, EveryInactiveStateResumesAndNoneSkipsTheQueue) {
  for (S from : kAll) {
    EXPECT_EQ(IsLegalTransition(from, S::kQueued), !IsActive(from) || from == S::kQueued)
        << SessionStateName(from);
    if (!IsActive(from)) {
      EXPECT_FALSE(IsLegalTransition(from, S::kRunning)) << SessionStateName(from);
      EXPECT_FALSE(IsLegalTransition(from, S::kCompiling)) << SessionStateName(from);
    }
  }
}

TEST(SessionStateTest, AnIllegalChangeIsAnInternalErrorNamingBothStates) {
  const absl::Status s = CheckTransition(S::kCompleted, S::kRunning);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("completed -> running"));
  EXPECT_TRUE(CheckTransition(S::kRunning, S::kCompleted).ok());
}

TEST(SessionStateTest, NamesRoundTripAndUnknownNamesReadAsInterrupted) {
  for (S s : kAll) EXPECT_EQ(StateFromName(SessionStateName(s)), s);
  EXPECT_EQ(StateFromName("exploded"), S::kInterrupted);
  int active = 0;
  for (S s : kAll) active += IsActive(s) ? 1 : 0;
  EXPECT_EQ(active, 4);
}

// Issue 16 item 8: a write error pauses a session in a state of its own, stored and shown as
// "paused"; it holds no executor turn (not active), resumes through the queue and can be given up.
TEST(SessionStateTest, PausedIsItsOwnInactiveStateThatResumesOrStops) {
  EXPECT_STREQ(SessionStateName(S::kPaused), "paused");
  EXPECT_EQ(StateFromName("paused"), S::kPaused);
  EXPECT_FALSE(IsActive(S::kPaused));
  EXPECT_TRUE(IsLegalTransition(S::kRunning, S::kPaused));
  EXPECT_TRUE(IsLegalTransition(S::kPaused, S::kQueued));
  EXPECT_TRUE(IsLegalTransition(S::kPaused, S::kStopped));
  EXPECT_FALSE(IsLegalTransition(S::kPaused, S::kRunning));
  EXPECT_FALSE(IsLegalTransition(S::kQueued, S::kPaused));
}

}  // namespace
}  // namespace anerd::sessions
