// The event-log codec: non-finite numbers round-trip, old `null`s read as NaN, hostile records are
// refused with the field named (never thrown), torn tails and damage are told apart.
#include "server/sessions/event_codec.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd::sessions {
namespace {

using ::testing::HasSubstr;
using Kind = SessionEventRecord::Kind;

SessionEventRecord StepEvent(double grad_norm, double loss) {
  SessionEventRecord e;
  e.seq = 4;
  e.unix_ms = 1700000000000;
  e.kind = Kind::kStep;
  e.step.step = 7;
  e.step.loss = loss;
  e.step.grad_norm = grad_norm;
  e.step.skipped = !std::isfinite(grad_norm);
  e.step.phases.io_ms = 1.5;
  e.queued_ms = 0.25;
  return e;
}

TEST(SessionEventsTest, NonFiniteNumbersRoundTrip) {
  const double inf = std::numeric_limits<double>::infinity();
  for (double v : {std::nan(""), inf, -inf, 3.25}) {
    const std::string line = EncodeEventLine(StepEvent(v, -v));
    absl::StatusOr<SessionEventRecord> back = ParseEventLine(line);
    ASSERT_TRUE(back.ok()) << back.status() << " " << line;
    EXPECT_EQ(back->step.step, 7);
    EXPECT_EQ(back->seq, 4u);
    EXPECT_EQ(std::isnan(back->step.grad_norm), std::isnan(v)) << line;
    if (!std::isnan(v)) {
      EXPECT_EQ(back->step.grad_norm, v);
      EXPECT_EQ(back->step.loss, -v);
    }
    EXPECT_EQ(back->step.skipped, !std::isfinite(v));
    EXPECT_EQ(back->step.phases.io_ms, 1.5);
    EXPECT_EQ(back->queued_ms, 0.25);
  }
}

// Issue 20 item 4: evaluation and sample events round-trip with every field, and a record of
// either kind without its object is refused naming it.
TEST(SessionEventsTest, EvalAndSampleEventsRoundTrip) {
  SessionEventRecord e;
  e.kind = Kind::kEval;
  e.eval.step = 12;
  e.eval.report.loss = 2.5;
  e.eval.report.perplexity = std::exp(2.5);
  e.eval.report.sequences = 3;
  e.eval.report.tokens = 192;
  e.eval.report.source = "val_split";
  e.eval.report.eval_ms = 4.5;
  e.eval.best = true;
  absl::StatusOr<SessionEventRecord> back = ParseEventLine(EncodeEventLine(e));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->kind, Kind::kEval);
  EXPECT_EQ(back->eval.step, 12);
  EXPECT_EQ(back->eval.report.loss, 2.5);
  EXPECT_EQ(back->eval.report.perplexity, std::exp(2.5));
  EXPECT_EQ(back->eval.report.sequences, 3);
  EXPECT_EQ(back->eval.report.tokens, 192);
  EXPECT_EQ(back->eval.report.source, "val_split");
  EXPECT_EQ(back->eval.report.eval_ms, 4.5);
  EXPECT_TRUE(back->eval.best);

  SessionEventRecord s;
  s.kind = Kind::kSample;
  s.sample.step = 9;
  s.sample.prompt = "Once\nupon";
  s.sample.text = " a time \xc3\xa9";
  s.sample.tokens = 10;
  s.sample.sample_ms = 1.25;
  back = ParseEventLine(EncodeEventLine(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->kind, Kind::kSample);
  EXPECT_EQ(back->sample.step, 9);
  EXPECT_EQ(back->sample.prompt, "Once\nupon");
  EXPECT_EQ(back->sample.text, " a time \xc3\xa9");
  EXPECT_EQ(back->sample.tokens, 10);
  EXPECT_EQ(back->sample.sample_ms, 1.25);

  absl::StatusOr<SessionEventRecord> bad = ParseEventLine(R"({"kind":4,"ms":1,"seq":0})");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("eval"));
  bad = ParseEventLine(R"({"kind":5,"ms":1,"seq":0,"sample":{"step":"x"}})");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("sample.step"));
}

TEST(SessionEventsTest, NullReadsAsNaN) {
  absl::StatusOr<SessionEventRecord> e =
      ParseEventLine(R"({"kind":0,"ms":1,"phases":[0,0,0,0,0,0,0],"seq":3,)"
                     R"("step":[5,2.5,0,null,1e30,true,1,1,1,1,0]})");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(std::isnan(e->step.grad_norm));
  EXPECT_TRUE(e->step.skipped);
}

// Issue 18 item 6: the kernels' device time is an optional phase. It round-trips with its label,
// stays absent when unknown, and a log written before it existed still loads.
TEST(SessionEventsTest, KernelDeviceTimeIsOptionalAndOldLogsLoad) {
  SessionEventRecord e = StepEvent(1.0, 2.0);
  e.step.phases.kernel_hw_ms = 3.5;
  e.step.phases.hw_simulated = true;
  absl::StatusOr<SessionEventRecord> back = ParseEventLine(EncodeEventLine(e));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(back->step.phases.kernel_hw_ms.has_value());
  EXPECT_DOUBLE_EQ(*back->step.phases.kernel_hw_ms, 3.5);
  EXPECT_TRUE(back->step.phases.hw_simulated);

  const std::string absent = EncodeEventLine(StepEvent(1.0, 2.0));
  EXPECT_THAT(absent, ::testing::Not(HasSubstr("kernel_hw")));
  back = ParseEventLine(absent);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->step.phases.kernel_hw_ms.has_value());

  // A line exactly as the previous release wrote it.
  back = ParseEventLine(R"({"kind":0,"ms":1,"phases":[1,2,3,4,5,6,7],"seq":3,)"
                        R"("step":[1,2.5,0.001,1,256,false,10,100,1,0.1,0]})");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_DOUBLE_EQ(back->step.phases.optim_ms, 7);
  EXPECT_FALSE(back->step.phases.kernel_hw_ms.has_value());

  back = ParseEventLine(R"({"v":2,"kind":0,"ms":1,"seq":3,"step":{"step":1,"kernel_hw_ms":[1]}})");
  EXPECT_THAT(back.status().message(), HasSubstr("kernel_hw_ms"));
}

TEST(SessionEventsTest, InvalidUtf8InTextDoesNotThrow) {
  SessionEventRecord e;
  e.kind = Kind::kWarning;
  e.text = "bad \xff\xfe bytes";
  absl::StatusOr<SessionEventRecord> back = ParseEventLine(EncodeEventLine(e));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_THAT(back->text, HasSubstr("bad "));
}

TEST(SessionEventsTest, HostileRecordsAreRefusedNamingTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "not valid JSON"},
      {"[1,2]", "not a JSON object"},
      {R"({"seq":1,"ms":1})", "missing"},
      {R"({"seq":"x","ms":1,"kind":1})", "seq"},
      {R"({"seq":-1,"ms":1,"kind":1})", "seq"},
      {R"({"seq":18446744073709551615,"ms":1,"kind":1})", "seq"},
      {R"({"seq":1,"ms":1.5,"kind":1})", "ms"},
      {R"({"seq":1,"ms":1,"kind":9})", "kind"},
      {R"({"seq":1,"ms":1,"kind":1,"text":5})", "text"},
      {R"({"seq":1,"ms":1,"kind":2,"ckpt_step":"a"})", "ckpt_step"},
      {R"({"seq":1,"ms":1,"kind":0,"step":[1],"phases":[]})", "step"},
      {R"({"seq":1,"ms":1,"kind":0,"step":[1,2,3,4,5,6,7,8,9,10,11],"phases":[0,0,0,0,0,0,0]})",
       "skipped"},
      {R"({"seq":1,"ms":1,"kind":0,"step":[1,{},3,4,5,true,7,8,9,10,11],)"
       R"("phases":[0,0,0,0,0,0,0]})",
       "step[1]"},
      {R"({"seq":1,"ms":1,"kind":0,"step":[1.5,2,3,4,5,true,7,8,9,10,11],)"
       R"("phases":[0,0,0,0,0,0,0]})",
       "step[0]"},
      {R"({"seq":1,"ms":1,"kind":0,"step":[1,2,3,4,5,true,7,8,9,10,11],)"
       R"("phases":[0,0,0,"x",0,0,0]})",
       "phases[3]"},
  };
  for (const auto& [line, want] : cases) {
    absl::StatusOr<SessionEventRecord> e = ParseEventLine(line);
    ASSERT_FALSE(e.ok()) << line;
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(e.status().message(), HasSubstr(want)) << line;
  }
  EXPECT_FALSE(ParseEventLine(std::string(kMaxEventLineBytes + 1, ' ')).ok());
}

TEST(SessionEventsTest, TornTailAndDamageAreToldApart) {
  SessionEventRecord a;
  a.kind = Kind::kState;
  a.text = "queued";
  SessionEventRecord b = a;
  b.seq = 1;
  const std::string good = EncodeEventLine(a) + "\n" + EncodeEventLine(b) + "\n";

  EventLogContents torn = ParseEventLog(good + "{\"seq\":2,", "log");
  EXPECT_EQ(torn.events.size(), 2u);
  EXPECT_TRUE(torn.torn_tail);
  EXPECT_EQ(torn.valid_bytes, static_cast<int64_t>(good.size()));
  EXPECT_EQ(torn.corruption, "");

  SessionEventRecord c = a;
  c.seq = 5;  // a gap (a failed append) is fine; the records are renumbered
  EventLogContents damaged =
      ParseEventLog(EncodeEventLine(a) + "\nnot json\n" + EncodeEventLine(c) + "\n", "log");
  EXPECT_FALSE(damaged.torn_tail);
  ASSERT_EQ(damaged.events.size(), 2u);
  EXPECT_EQ(damaged.events[1].seq, 1u);
  EXPECT_THAT(damaged.corruption, HasSubstr("log line 2: not valid JSON"));

  EventLogContents reordered = ParseEventLog(
      EncodeEventLine(b) + "\n" + EncodeEventLine(a) + "\n" + EncodeEventLine(c) + "\n", "log");
  EXPECT_THAT(reordered.corruption, HasSubstr("log line 2: seq 0 does not follow"));
  EXPECT_EQ(reordered.events.size(), 2u);
}

}  // namespace
}  // namespace anerd::sessions
