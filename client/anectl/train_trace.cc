#include "client/anectl/train_trace.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/rpc/grpc_status.h"

namespace anerd::anectl {
namespace {

int FailCall(CommandContext& ctx, const grpc::Status& s) {
  absl::StatusOr<client::AnerdClient*> c = ctx.Client();
  return ctx.Fail(c.ok() ? client::DescribeCallError(FromGrpcStatus(s), (*c)->options())
                         : FromGrpcStatus(s));
}

}  // namespace

absl::StatusOr<StepRange> ParseStepRange(const std::string& text) {
  StepRange r;
  const std::vector<std::string> parts = absl::StrSplit(text, '-');
  const auto bad = [&text] {
    return absl::InvalidArgumentError(absl::StrCat(
        "--steps '", text, "': expected N (the latest N steps) or A-B, with N, A, B >= 1"));
  };
  if (parts.size() == 1) {
    if (!absl::SimpleAtoi(parts[0], &r.latest) || r.latest < 1) return bad();
    return r;
  }
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &r.first) ||
      !absl::SimpleAtoi(parts[1], &r.last) || r.first < 1 || r.last < r.first) {
    return bad();
  }
  return r;
}

nlohmann::json TraceJson(const v1::SessionTrace& trace) {
  using Json = nlohmann::json;
  Json events = Json::array();
  events.push_back({{"ph", "M"},
                    {"pid", 1},
                    {"name", "process_name"},
                    {"args", {{"name", "anerd session " + trace.session_id()}}}});
  for (int t = 0; t < trace.thread_names_size(); ++t) {
    events.push_back({{"ph", "M"},
                      {"pid", 1},
                      {"tid", t + 1},
                      {"name", "thread_name"},
                      {"args", {{"name", trace.thread_names(t)}}}});
  }
  int64_t origin = INT64_MAX;
  for (const v1::TraceSpan& s : trace.spans()) origin = std::min(origin, s.start_unix_ns());
  for (const v1::TraceSpan& s : trace.spans()) {
    Json args = {{"step", s.step()}, {"ms", static_cast<double>(s.duration_ns()) / 1e6}};
    if (s.layer() >= 0) args["layer"] = s.layer();
    const std::string name = s.name() == "step" ? absl::StrCat("step ", s.step())
                             : s.layer() >= 0   ? absl::StrCat(s.name(), " L", s.layer())
                                                : s.name();
    events.push_back({{"ph", "X"},
                      {"pid", 1},
                      {"tid", s.thread() + 1},
                      {"name", name},
                      {"cat", s.name()},
                      {"ts", static_cast<double>(s.start_unix_ns() - origin) / 1e3},
                      {"dur", static_cast<double>(s.duration_ns()) / 1e3},
                      {"args", args}});
  }
  return {{"traceEvents", events},
          {"displayTimeUnit", "ms"},
          {"otherData",
           {{"session", trace.session_id()},
            {"first_step", trace.first_step()},
            {"last_step", trace.last_step()},
            {"start_unix_ns", origin == INT64_MAX ? 0 : origin},
            {"dropped_spans", trace.dropped()}}}};
}

int WriteSessionTrace(CommandContext& ctx, const std::string& id, const StepRange& range,
                      const std::string& out) {
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  v1::GetSessionTraceRequest request;
  request.set_session_id(id);
  if (range.latest > 0) {
    v1::GetSessionRequest get;
    get.set_session_id(id);
    v1::SessionInfo info;
    auto context = (*client)->NewContext();
    grpc::Status st = (*client)->stub()->GetSession(context.get(), get, &info);
    if (!st.ok()) return FailCall(ctx, st);
    if (info.step() <= 0) {
      return ctx.Fail(absl::FailedPreconditionError("session " + id + " has no steps yet"));
    }
    request.set_last_step(info.step());
    request.set_first_step(std::max<int64_t>(1, info.step() - range.latest + 1));
  } else {
    request.set_first_step(range.first);
    request.set_last_step(range.last);
  }
  v1::SessionTrace trace;
  auto context = (*client)->NewContext(absl::Seconds(ctx.options().timeout_seconds));
  grpc::Status st = (*client)->stub()->GetSessionTrace(context.get(), request, &trace);
  if (!st.ok()) return FailCall(ctx, st);
  std::set<int64_t> steps;
  for (const v1::TraceSpan& s : trace.spans()) steps.insert(s.step());
  std::ofstream file(out, std::ios::trunc);
  file << TraceJson(trace).dump() << "\n";
  file.close();
  if (!file) return ctx.Fail(absl::PermissionDeniedError("cannot write " + out));
  if (ctx.json()) {
    std::cout << nlohmann::json{{"schema_version", 1},
                                {"out", out},
                                {"spans", trace.spans_size()},
                                {"steps", steps.size()},
                                {"first_step", trace.first_step()},
                                {"last_step", trace.last_step()},
                                {"dropped_spans", trace.dropped()}}
                     .dump()
              << "\n";
    return kExitOk;
  }
  std::cout << "wrote " << out << " (" << trace.spans_size() << " measured spans of "
            << steps.size() << " steps, " << trace.first_step() << ".." << trace.last_step()
            << (trace.dropped() > 0
                    ? absl::StrCat("; the daemon's ring dropped ", trace.dropped(), " older spans")
                    : "")
            << ")\n";
  if (steps.empty()) {
    std::cerr << "anectl: no spans for those steps: the daemon keeps the spans of the session's "
                 "current run only (steps run since it last started or resumed)\n";
  }
  return kExitOk;
}

}  // namespace anerd::anectl
