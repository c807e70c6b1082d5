// anectl train start|ls|show|watch|stop|resume|rm|export: daemon-owned training sessions.
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/anectl/cli.h"
#include "client/anectl/commands.h"
#include "client/anectl/progress.h"
#include "client/anectl/train_trace.h"
#include "client/lib/artifacts.h"
#include "common/rpc/grpc_status.h"
#include "common/training_defaults.h"
#include "nlohmann/json.hpp"

namespace anerd::anectl {
namespace {

using Json = nlohmann::ordered_json;

absl::Status CallStatus(const grpc::Status& s, CommandContext& ctx) {
  absl::StatusOr<client::AnerdClient*> c = ctx.Client();
  if (!c.ok()) return FromGrpcStatus(s);
  return client::DescribeCallError(FromGrpcStatus(s), (*c)->options());
}

// What a paused session needs (its `error` names the write error and the same command).
std::string ResumeHint(const v1::SessionInfo& s) {
  return absl::StrCat("paused by a write error; free space, then: anectl train resume ", s.id());
}

// The fields every session has.
Json SessionFieldsJson(const v1::SessionInfo& s) {
  const v1::TrainingSpec& p = s.spec();
  return {{"id", s.id()},
          {"name", s.name()},
          {"state", s.state()},
          {"backend", s.backend()},
          {"step", s.step()},
          {"total_steps", s.total_steps()},
          {"last_loss", s.last_loss()},
          {"best_loss", s.best_loss()},
          {"started_unix_ms", s.started_unix_ms()},
          {"elapsed_seconds", s.elapsed_seconds()},
          {"eta_seconds", s.eta_seconds()},
          {"checkpoint_path", s.checkpoint_path()},
          {"logdir", s.logdir()},
          {"checkpoint_step", s.checkpoint_step()},
          {"restarts", s.restarts()},
          {"hosts", std::vector<std::string>(s.hosts().begin(), s.hosts().end())},
          {"error", s.error()},
          {"spec",
           {{"model", p.model()},
            {"config", p.custom_config()},
            {"init", p.init()},
            {"data", p.data()},
            {"data_artifact", p.data_artifact()},
            {"init_artifact", p.init_artifact()},
            {"val_fraction", p.val_fraction()},
            {"val_data", p.val_data()},
            {"val_artifact", p.val_artifact()},
            {"validation",
             {{"source", p.validation().source()},
              {"begin_token", p.validation().begin_token()},
              {"end_token", p.validation().end_token()},
              {"train_tokens", p.validation().train_tokens()}}},
            {"steps", p.steps()},
            {"lr", p.lr()},
            {"min_lr", p.min_lr()},
            {"schedule", p.schedule()},
            {"warmup", p.warmup()},
            {"accum", p.accum()},
            {"ranks", p.ranks()},
            {"hostfile", p.hostfile()},
            {"max_restarts", p.max_restarts()},
            {"clip", p.clip()},
            {"weight_decay", p.weight_decay()},
            {"beta1", p.beta1()},
            {"beta2", p.beta2()},
            {"eps", p.eps()},
            {"loss_scale", p.loss_scale()},
            {"numerics", p.numerics()},
            {"sampling", p.sampling()},
            {"seed", p.seed()},
            {"residual_scale", p.residual_scale()},
            {"compact_vocab", p.compact_vocab()},
            {"checkpoint_every", p.checkpoint_every()},
            {"eval_every", p.eval_every()},
            {"eval_batches", p.eval_batches()},
            {"sample_every", p.sample_every()},
            {"sample_prompt", p.sample_prompt()},
            {"sample_tokens", p.sample_tokens()}}}};
}

Json EvalJson(const v1::EvalEvent& e) {
  return {{"step", e.step()},           {"loss", e.loss()},     {"perplexity", e.perplexity()},
          {"sequences", e.sequences()}, {"tokens", e.tokens()}, {"source", e.source()},
          {"eval_ms", e.eval_ms()},     {"best", e.best()}};
}

Json SampleJson(const v1::SampleEvent& e) {
  return {{"step", e.step()},
          {"prompt", e.prompt()},
          {"text", e.text()},
          {"tokens", e.tokens()},
          {"sample_ms", e.sample_ms()}};
}

Json StepDetailJson(const v1::StepEvent& s);

Json SessionJson(const v1::SessionInfo& s) {
  Json j = SessionFieldsJson(s);
  if (!s.owner().empty()) j["owner"] = s.owner();  // admins only
  if (s.state() == "paused") j["resume_hint"] = ResumeHint(s);
  if (s.has_best_val_loss()) {
    j["best_val"] = {{"loss", s.best_val_loss()},
                     {"step", s.best_val_step()},
                     {"checkpoint_path", s.best_checkpoint_path()}};
  }
  if (s.has_last_eval()) j["last_eval"] = EvalJson(s.last_eval());
  if (s.has_last_sample()) j["last_sample"] = SampleJson(s.last_sample());
  if (s.has_last_step()) {
    const v1::StepEvent& step = s.last_step();
    j["last_step"] = {{"step", step.step()},
                      {"step_ms", step.step_ms()},
                      {"tokens_per_s", step.tokens_per_s()},
                      {"tflops", step.tflops()}};
    j["last_step"].update(StepDetailJson(step), /*merge_objects=*/true);
  }
  return j;
}

// The step breakdown and energy fields (issue 21): measured values only; an energy figure that
// was not measured is {"unavailable": why}, never 0.
Json StepDetailJson(const v1::StepEvent& s) {
  Json j = Json::object();
  // Measured only: absent from steps logged before the split existed.
  if (s.phases().has_kernel_fwd_ms()) j["phases_ms"]["kernel_fwd"] = s.phases().kernel_fwd_ms();
  if (s.phases().has_kernel_bwd_ms()) j["phases_ms"]["kernel_bwd"] = s.phases().kernel_bwd_ms();
  if (s.has_compile_ms()) j["compile_ms"] = s.compile_ms();
  if (s.has_compile_share()) j["compile_share"] = s.compile_share();
  if (s.has_device_utilization()) {
    j["device_utilization"] = {{"fraction", s.device_utilization()},
                               {"peak_tflops", s.peak_tflops()},
                               {"peak_source", s.peak_source()}};
  }
  if (s.has_energy_j()) {
    j["energy"] = {{"joules", s.energy_j()}, {"watts", s.power_w()}, {"source", s.energy_source()}};
    if (s.has_energy_j_per_token()) j["energy"]["joules_per_token"] = s.energy_j_per_token();
  } else if (!s.energy_unavailable().empty()) {
    j["energy"] = {{"unavailable", s.energy_unavailable()}};
  }
  if (!s.thermal_state().empty()) j["thermal_state"] = s.thermal_state();
  // Data-parallel steps (issue 24): the exposed all-reduce and, overlapped, its hidden part.
  const v1::PhaseTimes& p = s.phases();
  if (p.has_allreduce_ms()) j["phases_ms"]["allreduce"] = p.allreduce_ms();
  if (p.has_allreduce_total_ms()) {
    j["allreduce"] = {{"total_ms", p.allreduce_total_ms()},
                      {"hidden_ms", p.allreduce_hidden_ms()},
                      {"buckets", s.allreduce_buckets()}};
  }
  if (s.has_allreduce_bytes()) j["allreduce_bytes"] = s.allreduce_bytes();
  return j;
}

// "all-reduce 3.10 ms exposed of 9.80 ms (68% hidden in 5 buckets), 1.8 MB/step": data-parallel
// steps only (issue 24); empty otherwise.
std::string AllreduceLine(const v1::StepEvent& s) {
  const v1::PhaseTimes& p = s.phases();
  if (!p.has_allreduce_ms()) return "";
  std::string line = absl::StrFormat("all-reduce %.2f ms exposed", p.allreduce_ms());
  if (p.has_allreduce_total_ms()) {
    absl::StrAppendFormat(
        &line, " of %.2f ms (%.0f%% hidden in %d buckets)", p.allreduce_total_ms(),
        p.allreduce_total_ms() > 0 ? 100 * p.allreduce_hidden_ms() / p.allreduce_total_ms() : 0.0,
        s.allreduce_buckets());
  }
  if (s.has_allreduce_bytes()) {
    absl::StrAppendFormat(&line, ", %.1f MB/step", s.allreduce_bytes() / 1e6);
  }
  return line;
}

// The same for people: the kernel split, compile share and utilisation on one line, energy on
// another ("unavailable: why" where it was not measured).
std::vector<std::string> StepDetailLines(const v1::StepEvent& s) {
  const v1::PhaseTimes& p = s.phases();
  std::string speed;
  if (p.has_kernel_fwd_ms()) absl::StrAppendFormat(&speed, "kernel fwd %.2f ms", p.kernel_fwd_ms());
  if (p.has_kernel_bwd_ms()) {
    absl::StrAppendFormat(&speed, "%sbwd %.2f ms", speed.empty() ? "kernel " : "  ",
                          p.kernel_bwd_ms());
  }
  if (s.has_compile_share()) {
    absl::StrAppendFormat(&speed, "%scompile %.0f ms (%.1f%% of wall)", speed.empty() ? "" : "  ",
                          s.compile_ms(), 100 * s.compile_share());
  }
  if (s.has_device_utilization()) {
    absl::StrAppendFormat(&speed, "  utilization %.1f%% of %.2f TFLOPS (%s)",
                          100 * s.device_utilization(), s.peak_tflops(), s.peak_source());
  } else {
    absl::StrAppend(&speed, "  utilization unavailable (no measured peak: anectl probe peak)");
  }
  std::string energy;
  if (s.has_energy_j()) {
    energy = absl::StrFormat("energy %.3f J/step  %.2f W  (%s)", s.energy_j(), s.power_w(),
                             s.energy_source());
    if (s.has_energy_j_per_token()) {
      energy = absl::StrFormat("energy %.3f J/step  %.3f mJ/token  %.2f W  (%s)", s.energy_j(),
                               1000 * s.energy_j_per_token(), s.power_w(), s.energy_source());
    }
  } else {
    energy = "energy unavailable" +
             (s.energy_unavailable().empty() ? "" : ": " + s.energy_unavailable());
  }
  if (!s.thermal_state().empty()) absl::StrAppend(&energy, "  thermal ", s.thermal_state());
  std::vector<std::string> lines = {speed, energy};
  if (std::string ar = AllreduceLine(s); !ar.empty()) lines.push_back(std::move(ar));
  return lines;
}

Json EventJson(const v1::SessionEvent& e) {
  Json j = {{"seq", e.seq()}, {"unix_ms", e.unix_ms()}};
  if (e.has_step()) {
    const v1::StepEvent& s = e.step();
    const v1::PhaseTimes& p = s.phases();
    j["type"] = "step";
    j["step"] = s.step();
    j["loss"] = s.loss();
    j["lr"] = s.lr();
    j["grad_norm"] = s.grad_norm();
    j["loss_scale"] = s.loss_scale();
    j["skipped"] = s.skipped();
    j["step_ms"] = s.step_ms();
    j["tokens_per_s"] = s.tokens_per_s();
    j["tflops"] = s.tflops();
    j["queued_ms"] = s.queued_ms();
    j["phases_ms"] = {{"kernel", p.kernel_ms()}, {"io", p.io_ms()},   {"rms", p.rms_ms()},
                      {"elem", p.elem_ms()},     {"cls", p.cls_ms()}, {"dw_wait", p.dw_wait_ms()},
                      {"optim", p.optim_ms()}};
    if (p.has_kernel_hw_ms()) {  // absent on cpu: never a made-up 0
      j["phases_ms"]["kernel_hw"] = p.kernel_hw_ms();
      j["hw_time_source"] = p.hw_time_source();
    }
    j.update(StepDetailJson(s), /*merge_objects=*/true);  // phases_ms merged, not replaced
  } else if (e.kind_case() == v1::SessionEvent::kState) {
    j["type"] = "state";
    j["state"] = e.state();
    if (!e.detail().empty()) j["detail"] = e.detail();
  } else if (e.kind_case() == v1::SessionEvent::kCheckpoint) {
    j["type"] = "checkpoint";
    j["path"] = e.checkpoint();
    j["step"] = e.checkpoint_step();
  } else if (e.kind_case() == v1::SessionEvent::kWarning) {
    j["type"] = "warning";
    j["message"] = e.warning();
  } else if (e.has_eval()) {
    j["type"] = "eval";
    j.update(EvalJson(e.eval()));
  } else if (e.has_sample()) {
    j["type"] = "sample";
    j.update(SampleJson(e.sample()));
  } else {
    j["type"] = "gap";
    j["message"] = e.gap();
  }
  return j;
}

// Resolves a full id, a unique id prefix or a session name.
absl::StatusOr<std::string> ResolveSession(CommandContext& ctx, const std::string& key) {
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return client.status();
  v1::ListSessionsResponse all;
  auto context = (*client)->NewContext();
  grpc::Status s = (*client)->stub()->ListSessions(context.get(), {}, &all);
  if (!s.ok()) return CallStatus(s, ctx);
  std::vector<std::string> matches;
  for (const v1::SessionInfo& info : all.sessions()) {
    if (info.id() == key || info.name() == key) return info.id();
    if (absl::StartsWith(info.id(), key)) matches.push_back(info.id());
  }
  if (matches.size() == 1) return matches[0];
  if (matches.empty()) return absl::NotFoundError(absl::StrCat("no training session '", key, "'"));
  return absl::InvalidArgumentError(absl::StrCat("session prefix '", key, "' is ambiguous"));
}

std::string Bar(double fraction, int width) {
  fraction = std::min(1.0, std::max(0.0, fraction));
  const int full = static_cast<int>(fraction * width + 0.5);
  std::string out;
  for (int i = 0; i < width; ++i) out += i < full ? "\u2588" : "\u2591";
  return out;
}

// Renders watch events: a live block on a TTY, a step table with --table, JSON lines otherwise.
class WatchPrinter {
 public:
  enum class Mode { kLive, kTable, kJson };
  WatchPrinter(CommandContext& ctx, Mode mode, int64_t total, int64_t every)
      : ctx_(ctx), mode_(mode), total_(total), every_(every) {}

  void Print(const v1::SessionEvent& e) {
    if (mode_ == Mode::kJson) {
      std::cout << EventJson(e).dump() << std::endl;
      return;
    }
    if (e.has_step()) return Step(e.step());
    if (e.has_eval() || e.has_sample()) return Extra(e);
    std::string line;
    if (e.kind_case() == v1::SessionEvent::kState) {
      line = "state: " + e.state() + (e.detail().empty() ? "" : " (" + e.detail() + ")");
    }
    if (e.kind_case() == v1::SessionEvent::kCheckpoint) {
      line = absl::StrCat("checkpoint at step ", e.checkpoint_step(), ": ", e.checkpoint());
    }
    if (e.kind_case() == v1::SessionEvent::kWarning) line = "warning: " + e.warning();
    if (e.kind_case() == v1::SessionEvent::kGap) line = "gap: " + e.gap();
    if (mode_ == Mode::kLive) ClearBlock();
    std::cout << ctx_.Dim(line) << "\n";
    if (mode_ == Mode::kLive && have_step_) DrawBlock();
    std::cout.flush();
  }

  void Finish() {
    if (mode_ == Mode::kLive && have_step_) std::cout << "\n";
    std::cout.flush();
  }

 private:
  // An evaluation or a sample: a line in the table, the latest of each in the live block.
  void Extra(const v1::SessionEvent& e) {
    if (e.has_eval()) last_eval_ = e.eval();
    if (e.has_sample()) last_sample_ = e.sample();
    if (mode_ == Mode::kTable) {
      std::cout << (e.has_eval() ? EvalLine(e.eval()) : SampleLine(e.sample(), 0)) << "\n";
    } else {
      ClearBlock();
      if (have_step_) DrawBlock();
    }
    std::cout.flush();
  }

  static std::string EvalLine(const v1::EvalEvent& v) {
    return absl::StrFormat("val loss %.4f  ppl %.2f  at step %d  (%d seq of %s)%s", v.loss(),
                           v.perplexity(), v.step(), v.sequences(), v.source(),
                           v.best() ? "  best" : "");
  }

  // The sample on one line (newlines shown as \n), cut to `width` bytes when > 0.
  static std::string SampleLine(const v1::SampleEvent& v, size_t width) {
    std::string text = absl::StrCat(v.prompt(), "|", v.text());
    std::string flat;
    for (char c : text) {
      if (c == '\n') {
        flat += "\\n";
      } else if (static_cast<unsigned char>(c) >= 0x20 || c == '\t') {
        flat += c;
      }
    }
    if (width > 0 && flat.size() > width) {
      size_t cut = width;  // back to a UTF-8 boundary
      while (cut > 0 && (static_cast<unsigned char>(flat[cut]) & 0xC0) == 0x80) --cut;
      flat = flat.substr(0, cut) + "...";
    }
    return absl::StrCat("sample at step ", v.step(), ": ", flat);
  }

  void Step(const v1::StepEvent& s) {
    last_ = s;
    have_step_ = true;
    sum_ms_ += s.step_ms();
    ++count_;
    if (mode_ == Mode::kTable) {
      if (!header_) {
        std::cout << ctx_.Bold(
                         absl::StrFormat("%7s %9s %9s %8s %9s %7s | %7s %7s %7s %7s %7s %7s %7s",
                                         "STEP", "LOSS", "LR", "MS/STEP", "TOK/S", "GNORM",
                                         "kernel", "io", "rms", "elem", "cls", "dw_wait", "optim"))
                  << "\n";
        header_ = true;
      }
      if (s.step() % every_ == 0 || s.step() == total_ || s.step() == 1) {
        const v1::PhaseTimes& p = s.phases();
        std::cout << absl::StrFormat(
                         "%7d %9.4f %9.2e %8.2f %9.0f %7.3f | %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f "
                         "%7.2f%s",
                         s.step(), s.loss(), s.lr(), s.step_ms(), s.tokens_per_s(), s.grad_norm(),
                         p.kernel_ms(), p.io_ms(), p.rms_ms(), p.elem_ms(), p.cls_ms(),
                         p.dw_wait_ms(), p.optim_ms(), s.skipped() ? "  (skipped)" : "")
                  << "\n";
      }
      return;
    }
    ClearBlock();
    DrawBlock();
    std::cout.flush();
  }

  void ClearBlock() {
    for (int i = 0; i < drawn_; ++i) std::cout << "\033[1A\033[2K";
    std::cout << "\r";
    drawn_ = 0;
  }

  void DrawBlock() {
    const v1::StepEvent& s = last_;
    const double avg = count_ ? sum_ms_ / count_ : 0;
    const double eta = (total_ - s.step()) * avg / 1000;
    std::cout << absl::StrFormat("%s %d/%d  eta %s\n",
                                 Bar(total_ ? double(s.step()) / total_ : 0, 40), s.step(), total_,
                                 FormatDuration(eta));
    std::cout << absl::StrFormat(
        "step %d  loss %.4f  lr %.2e  %.2f ms/step  %.0f tok/s  %.3f TFLOPS\n", s.step(), s.loss(),
        s.lr(), s.step_ms(), s.tokens_per_s(), s.tflops());
    const v1::PhaseTimes& p = s.phases();
    const std::pair<const char*, double> phases[] = {
        {"kernel", p.kernel_ms()}, {"io", p.io_ms()},   {"rms", p.rms_ms()},
        {"elem", p.elem_ms()},     {"cls", p.cls_ms()}, {"dw_wait", p.dw_wait_ms()},
        {"optim", p.optim_ms()}};
    double sum = 0;
    for (const auto& ph : phases) sum += ph.second;
    for (const auto& ph : phases) {
      std::cout << absl::StrFormat("  %-8s %s %7.2f ms\n", ph.first,
                                   Bar(sum > 0 ? ph.second / sum : 0, 30), ph.second);
    }
    drawn_ = 9;
    for (const std::string& line : StepDetailLines(s)) {
      std::cout << line << "\n";
      ++drawn_;
    }
    // The seed's dashboard: the latest validation loss and text sample under the numbers.
    if (last_eval_.has_value()) {
      std::cout << EvalLine(*last_eval_) << "\n";
      ++drawn_;
    }
    if (last_sample_.has_value()) {
      std::cout << SampleLine(*last_sample_, 72) << "\n";
      ++drawn_;
    }
  }

  CommandContext& ctx_;
  Mode mode_;
  int64_t total_;
  int64_t every_;
  v1::StepEvent last_;
  std::optional<v1::EvalEvent> last_eval_;
  std::optional<v1::SampleEvent> last_sample_;
  bool have_step_ = false, header_ = false;
  double sum_ms_ = 0;
  int64_t count_ = 0;
  int drawn_ = 0;
};

int Watch(CommandContext& ctx, const std::string& id, int64_t from_step, bool from_now,
          bool table) {
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  v1::GetSessionRequest get;
  get.set_session_id(id);
  v1::SessionInfo info;
  {
    auto c = (*client)->NewContext();
    grpc::Status s = (*client)->stub()->GetSession(c.get(), get, &info);
    if (!s.ok()) return ctx.Fail(CallStatus(s, ctx));
  }
  const bool tty = isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr;
  const WatchPrinter::Mode mode = ctx.json() ? WatchPrinter::Mode::kJson
                                  : table    ? WatchPrinter::Mode::kTable
                                  : tty      ? WatchPrinter::Mode::kLive
                                             : WatchPrinter::Mode::kJson;
  WatchPrinter printer(ctx, mode, info.total_steps(),
                       std::max<int64_t>(1, info.total_steps() / 25));
  v1::WatchSessionRequest request;
  request.set_session_id(id);
  request.set_from_step(from_step);
  request.set_from_now(from_now);
  auto context = (*client)->NewContext(absl::InfiniteDuration());
  auto reader = (*client)->stub()->WatchSession(context.get(), request);
  v1::SessionEvent event;
  std::string final_state, final_detail;
  while (reader->Read(&event)) {
    printer.Print(event);
    if (event.kind_case() == v1::SessionEvent::kState) {
      final_state = event.state();
      final_detail = event.detail();
    }
  }
  printer.Finish();
  grpc::Status s = reader->Finish();
  if (!s.ok()) return ctx.Fail(CallStatus(s, ctx));
  if (final_state == "failed") {
    std::fprintf(stderr, "anectl: session %s failed: %s\n", id.c_str(),
                 final_detail.empty() ? "(no reason recorded; see anectl train show)"
                                      : final_detail.c_str());
  }
  if (final_state == "paused" && !ctx.json()) {
    // The watch ends with the session paused: say why and how to go on (to stderr: stdout may
    // be a JSON-lines stream).
    auto c = (*client)->NewContext();
    if ((*client)->stub()->GetSession(c.get(), get, &info).ok()) {
      std::cerr << ctx.Red(absl::StrCat("paused: ", info.error())) << "\n"
                << ResumeHint(info) << "\n";
    }
  }
  return final_state == "failed" || final_state == "paused" ? kExitError : kExitOk;
}

struct StartFlags {
  std::string model, config, init = "scratch", data, schedule, loss_scale, numerics, sampling,
                             residual_scale, name, backend, val_data;
  int64_t steps = 0, warmup = -1, accum = 0, seed = -1, checkpoint_every = 0, eval_every = 0,
          eval_batches = 8, sample_every = 0, sample_tokens = 48;
  std::string sample_prompt;
  int64_t ranks = 0, max_restarts = 0;  // mpi (issue 24)
  std::string hostfile, reduce;
  int64_t allreduce_bucket_kb = 0;  // overlap (issue 24 item 2)
  bool no_allreduce_overlap = false;
  double lr = 0, min_lr = 0, clip = -1, weight_decay = -1, beta1 = 0, beta2 = 0, eps = 0,
         val_fraction = 0;
  bool compact_vocab = false, watch = false, table = false, upload = false, no_upload = false;
};

std::string Absolute(const std::string& path) {
  char resolved[PATH_MAX];
  return ::realpath(path.c_str(), resolved) != nullptr ? std::string(resolved) : path;
}

bool IsLocalFile(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

bool LooksLikeIdPrefix(const std::string& s) {
  return s.size() >= 6 && s.size() <= 64 &&
         s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// The spec's file inputs: a path field and the artifact field that replaces it.
struct FileInput {
  const char* flag;
  std::string* path;
  std::string* artifact;
  const char* kind;
};

// Whether `spec` may still name daemon-side paths for its inputs; when not (a remote daemon, or a
// local one that refused a path outside its roots), every input that is a readable local file is
// uploaded (the bytes are skipped when the daemon has them) and named by artifact id instead.
// An input that is no local file but an id prefix is resolved among the caller's artifacts.
absl::Status ResolveInputs(CommandContext& ctx, client::AnerdClient& client, bool upload,
                           v1::TrainingSpec* spec) {
  const FileInput inputs[] = {
      {"data", spec->mutable_data(), spec->mutable_data_artifact(), "dataset"},
      {"init", spec->mutable_init(), spec->mutable_init_artifact(), "model"},
      {"val-data", spec->mutable_val_data(), spec->mutable_val_artifact(), "dataset"},
  };
  for (const FileInput& in : inputs) {
    const std::string value = *in.path;
    if (value.empty()) continue;
    if (!IsLocalFile(value)) {
      if (!LooksLikeIdPrefix(value)) continue;  // the daemon says what is wrong with it
      absl::StatusOr<std::string> id = client::ResolveArtifactId(client, value);
      if (!id.ok())
        return absl::Status(id.status().code(),
                            absl::StrCat("--", in.flag, ": ", id.status().message()));
      in.path->clear();
      *in.artifact = *id;
      continue;
    }
    if (!upload) continue;
    absl::StatusOr<client::PushResult> pushed;
    {
      ProgressBar bar(absl::StrCat("upload ", value));
      pushed = client::PushFile(client, value, in.kind, "", bar.Callback());
    }
    if (!pushed.ok()) {
      return absl::Status(pushed.status().code(),
                          absl::StrCat("--", in.flag, " ", value, ": ", pushed.status().message()));
    }
    // On stderr, so it never mixes with --json output.
    std::fprintf(stderr, "%s %s as artifact %s\n",
                 pushed->bytes_sent > 0 ? "uploaded" : "already on the daemon:", value.c_str(),
                 pushed->info.id().substr(0, 12).c_str());
    in.path->clear();
    *in.artifact = pushed->info.id();
  }
  return absl::OkStatus();
}

// "HELP (default VALUE)" with VALUE from the engine's one source of training defaults.
template <typename T>
std::string Default(const char* help, const T& value) {
  if constexpr (std::is_floating_point_v<T>) {
    return absl::StrFormat("%s (default %g)", help, value);
  } else {
    return absl::StrCat(help, " (default ", value, ")");
  }
}

int Start(CommandContext& ctx, const std::vector<std::string>& args) {
  namespace d = training_defaults;
  StartFlags f;
  ArgParser p(
      "anectl train start --data FILE [--model NAME|--config k=v,...] [--steps N] ... [--watch]",
      "Starts a training session on the daemon. --data, --init and --val-data are local files "
      "or artifact ids (anectl data push). A local daemon reads files under its --data-root "
      "itself; files anywhere else, and every file for a daemon reached over TCP, are uploaded "
      "first (bytes the daemon already has are not sent again). Unset flags take the engine's "
      "defaults.");
  p.AddString(
      "model", &f.model,
      "tiny | stories15m | stories110m | qwen3_0_6b (default: tiny, or --init's own shape)");
  p.AddString("config", &f.config,
              "custom model: dim=,hidden=,layers=,heads=,kv_heads=,head_dim=,vocab=,seq=; with "
              "--init only overrides (seq=...), and must agree with the file otherwise");
  p.AddString("init", &f.init,
              "scratch, or a model to fine-tune: a llama2.c file, a seed checkpoint, or a Hugging "
              "Face checkpoint directory (config.json + safetensors); its shape needs no --config");
  p.AddString("data", &f.data, "uint16 token file (.bin) or UTF-8 text file");
  p.AddInt("steps", &f.steps, Default("optimizer steps", d::kSteps));
  p.AddDouble("lr", &f.lr, Default("peak learning rate", d::kLr));
  p.AddDouble("min-lr", &f.min_lr, Default("cosine floor", d::kMinLr));
  p.AddString("schedule", &f.schedule, Default("cosine | constant", d::kSchedule));
  p.AddInt("warmup", &f.warmup, Default("warmup steps", d::kWarmup));
  p.AddInt("accum", &f.accum, Default("sequences per optimizer step", d::kAccum));
  p.AddInt("ranks", &f.ranks,
           "data-parallel processes launched with mpirun, each with --accum sequences (default 1)");
  p.AddString("hostfile", &f.hostfile,
              "with --ranks: an MPI hostfile (daemon-side path; default: this host only)");
  p.AddString("reduce", &f.reduce,
              "with --ranks: sum (MPI_Allreduce) | ordered (summed in rank order; default sum)");
  p.AddInt("max-restarts", &f.max_restarts,
           "with --ranks: relaunches from the last checkpoint after a rank fails (default 0)");
  p.AddInt("allreduce-bucket-kb", &f.allreduce_bucket_kb,
           "with --ranks: gradients reduced in buckets of this many KiB during backward "
           "(default 4096)");
  p.AddBool("no-allreduce-overlap", &f.no_allreduce_overlap,
            "with --ranks: reduce the gradients after the backward pass, not during it");
  p.AddDouble("clip", &f.clip, Default("global grad-norm clip, 0 = off", d::kClip));
  p.AddDouble("weight-decay", &f.weight_decay,
              Default("AdamW weight decay on matrices and embedding", d::kWeightDecay));
  p.AddDouble("beta1", &f.beta1, Default("AdamW beta1", d::kBeta1));
  p.AddDouble("beta2", &f.beta2, Default("AdamW beta2", d::kBeta2));
  p.AddDouble("eps", &f.eps, Default("AdamW epsilon", d::kEps));
  p.AddString("loss-scale", &f.loss_scale, Default("dynamic | a number", d::kLossScale));
  p.AddString("numerics", &f.numerics, Default("ane (fp16 rounding) | fp32", d::kNumerics));
  p.AddString("sampling", &f.sampling, Default("random | sequential", d::kSampling));
  p.AddInt("seed", &f.seed, Default("seed for init and sampling", d::kSeed));
  p.AddString("residual-scale", &f.residual_scale, Default("1 | deepnet", d::kResidualScale));
  p.AddBool("compact-vocab", &f.compact_vocab, "classifier over the token ids in the data only");
  p.AddInt("checkpoint-every", &f.checkpoint_every,
           "steps between checkpoints (default: the daemon's --checkpoint-interval-s, 5 min)");
  p.AddString("name", &f.name, "a label for the session");
  p.AddString("backend", &f.backend, "backend to train on (default: the daemon's)");
  p.AddDouble("val-fraction", &f.val_fraction,
              "hold out this tail fraction of the data's tokens (0 < F < 1) for evaluation");
  p.AddString("val-data", &f.val_data, "held-out data: a local file or an artifact id (prefix)");
  p.AddInt("eval-every", &f.eval_every,
           "every N steps the loss on held-out data (--val-fraction/--val-data, else the data's "
           "tail), streamed as an eval event; keeps the best-validation checkpoint (0 = off)");
  p.AddInt("eval-batches", &f.eval_batches, "sequences per evaluation (default 8)");
  p.AddInt("sample-every", &f.sample_every,
           "every N steps a greedy text sample after --sample-prompt (text data; 0 = off)");
  p.AddString("sample-prompt", &f.sample_prompt, "the prompt of --sample-every's samples");
  p.AddInt("sample-tokens", &f.sample_tokens, "tokens per sample (default 48)");
  p.AddBool("upload", &f.upload,
            "upload local --data/--init/--val-data files even to a local daemon that could read "
            "them");
  p.AddBool("no-upload", &f.no_upload,
            "never upload: the daemon must be able to read the files itself");
  p.AddBool("watch", &f.watch, "watch the session after starting it");
  p.AddBool("table", &f.table, "with --watch: print a step table instead of the live view");
  if (int r = ParseOrExit(p, args); r >= 0) return r;
  if (f.data.empty()) {
    std::fprintf(stderr,
                 "anectl: --data is required (a token or text file; see anectl data synth)\n");
    return kExitUsage;
  }
  v1::StartTrainingRequest req;
  v1::TrainingSpec* s = req.mutable_spec();
  s->set_name(f.name);
  const bool init = f.init != "scratch";
  // Without --model and --config, an init file brings its own shape; tiny otherwise.
  s->set_model(!f.config.empty() ? "" : !f.model.empty() ? f.model : init ? "" : "tiny");
  s->set_custom_config(f.config);
  std::string init_path = init ? Absolute(f.init) : "";
  std::error_code ec;
  if (init && std::filesystem::is_directory(init_path, ec)) init_path += "/config.json";
  s->set_init(init_path);
  s->set_data(Absolute(f.data));
  s->set_val_fraction(f.val_fraction);
  if (!f.val_data.empty()) s->set_val_data(Absolute(f.val_data));
  s->set_steps(f.steps);
  s->set_lr(f.lr);
  s->set_min_lr(f.min_lr);
  s->set_schedule(f.schedule);
  if (f.warmup >= 0) {
    s->set_warmup(f.warmup);
    s->set_has_warmup(true);
  }
  s->set_accum(static_cast<int32_t>(f.accum));
  s->set_ranks(static_cast<int32_t>(std::clamp<int64_t>(f.ranks, -1, INT32_MAX)));
  if (!f.hostfile.empty()) s->set_hostfile(Absolute(f.hostfile));
  s->set_reduce(f.reduce);
  s->set_max_restarts(static_cast<int32_t>(std::clamp<int64_t>(f.max_restarts, -1, INT32_MAX)));
  s->set_allreduce_bucket_kb(
      static_cast<int32_t>(std::clamp<int64_t>(f.allreduce_bucket_kb, -1, INT32_MAX)));
  if (f.no_allreduce_overlap) s->set_allreduce_overlap(false);
  if (f.clip >= 0) {
    s->set_clip(f.clip);
    s->set_has_clip(true);
  }
  if (f.weight_decay >= 0) {
    s->set_weight_decay(f.weight_decay);
    s->set_has_weight_decay(true);
  }
  s->set_beta1(f.beta1);
  s->set_beta2(f.beta2);
  s->set_eps(f.eps);
  s->set_loss_scale(f.loss_scale);
  s->set_numerics(f.numerics);
  s->set_sampling(f.sampling);
  if (f.seed >= 0) {
    s->set_seed(static_cast<uint64_t>(f.seed));
    s->set_has_seed(true);
  }
  s->set_residual_scale(f.residual_scale);
  s->set_compact_vocab(f.compact_vocab);
  s->set_checkpoint_every(f.checkpoint_every);
  s->set_eval_every(f.eval_every);
  s->set_eval_batches(static_cast<int32_t>(std::clamp<int64_t>(f.eval_batches, -1, INT32_MAX)));
  s->set_sample_every(f.sample_every);
  s->set_sample_prompt(f.sample_prompt);
  s->set_sample_tokens(static_cast<int32_t>(std::clamp<int64_t>(f.sample_tokens, -1, INT32_MAX)));
  s->set_backend(f.backend);
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  // A daemon over TCP reads no paths of ours: upload up front. A local one reads paths under its
  // data roots; when it refuses one as outside them, upload and start again by artifact id (its
  // other refusals — its state dir, its secrets, dot-files — stand).
  const bool remote = !(*client)->options().endpoint.is_unix;
  if (f.upload && f.no_upload) {
    std::fprintf(stderr, "anectl: --upload and --no-upload exclude each other\n");
    return kExitUsage;
  }
  if (absl::Status r = ResolveInputs(ctx, **client, !f.no_upload && (remote || f.upload), s);
      !r.ok()) {
    return ctx.Fail(r);
  }
  v1::SessionInfo info;
  grpc::Status st;
  {
    auto context = (*client)->NewContext();
    st = (*client)->stub()->StartTraining(context.get(), req, &info);
  }
  if (st.error_code() == grpc::StatusCode::PERMISSION_DENIED && !remote && !f.upload &&
      !f.no_upload && absl::StrContains(st.error_message(), "outside the daemon's data roots")) {
    if (absl::Status r = ResolveInputs(ctx, **client, true, s); !r.ok()) return ctx.Fail(r);
    auto context = (*client)->NewContext();
    st = (*client)->stub()->StartTraining(context.get(), req, &info);
  }
  if (!st.ok()) return ctx.Fail(CallStatus(st, ctx));
  if (ctx.json() && !f.watch) {
    std::cout << Json{{"schema_version", 1}, {"session", SessionJson(info)}}.dump(2) << "\n";
    return kExitOk;
  }
  std::fprintf(stderr, "started session %s (%s): %lld steps on %s\n", info.id().c_str(),
               info.name().c_str(), static_cast<long long>(info.total_steps()),
               info.backend().c_str());
  if (!ctx.json()) std::cout << info.id() << "\n";
  return f.watch ? Watch(ctx, info.id(), 0, false, f.table) : kExitOk;
}

int List(CommandContext& ctx, const std::vector<std::string>& args) {
  ArgParser p("anectl train ls [--json]", "Lists training sessions, newest first.");
  if (int r = ParseOrExit(p, args); r >= 0) return r;
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  v1::ListSessionsResponse all;
  auto context = (*client)->NewContext();
  grpc::Status st = (*client)->stub()->ListSessions(context.get(), {}, &all);
  if (!st.ok()) return ctx.Fail(CallStatus(st, ctx));
  if (ctx.json()) {
    Json list = Json::array();
    for (const auto& s : all.sessions()) list.push_back(SessionJson(s));
    std::cout << Json{{"schema_version", 1}, {"sessions", list}}.dump(2) << "\n";
    return kExitOk;
  }
  // Owners come to admin callers only (another client's sessions are never listed anyway).
  bool owners = false, paused = false;
  for (const auto& s : all.sessions()) {
    owners = owners || !s.owner().empty();
    paused = paused || s.state() == "paused";
  }
  std::cout << ctx.Bold(absl::StrFormat("%-13s %-16s %-12s %13s %9s %9s %9s%s", "ID", "NAME",
                                        "STATE", "STEP", "LOSS", "BEST", "ELAPSED",
                                        owners ? "  OWNER" : ""))
            << "\n";
  for (const auto& s : all.sessions()) {
    std::cout << absl::StrFormat("%-13s %-16s %-12s %6d/%-6d %9.4f %9.4f %9s%s\n", s.id(),
                                 s.name().substr(0, 16), s.state(), s.step(), s.total_steps(),
                                 s.last_loss(), s.best_loss(), FormatDuration(s.elapsed_seconds()),
                                 owners ? "  " + s.owner() : "");
    // Why a session failed or paused, under its row.
    if (!s.error().empty()) std::cout << "              " << ctx.Red(s.error()) << "\n";
  }
  if (all.sessions_size() == 0) std::cout << "(no sessions; start one with anectl train start)\n";
  if (paused) {
    std::cout << "paused: stopped by a write error (full disk) at the last checkpoint; free "
                 "space, then anectl train resume ID (anectl train show ID says why)\n";
  }
  return kExitOk;
}

// show / stop / resume / logdir share the shape: resolve the id, one call, print the session.
int SessionCall(CommandContext& ctx, const std::vector<std::string>& args,
                const std::string& verb) {
  std::string key;
  int64_t steps = 0, ranks = 0;
  bool watch = false, table = false;
  ArgParser p(absl::StrCat("anectl train ", verb, " ID",
                           verb == "resume" ? " [--steps N] [--ranks N] [--watch [--table]]" : ""),
              verb == "show" ? "Shows a session: state, progress, losses, checkpoint, spec."
              : verb == "logdir"
                  ? "Prints the session's directory on the daemon's machine: its TensorBoard "
                    "event files are there (tensorboard --logdir DIR)."
              : verb == "stop" ? "Checkpoints and stops a running session (gives up a paused one)."
                               : "Continues a session from its last checkpoint.");
  p.AddPositional("ID", &key, "session id, unique prefix or name");
  if (verb == "resume") {
    p.AddInt("steps", &steps, "N more steps: the new total is the old total + N (default 0)");
    p.AddInt("ranks", &ranks,
             "continue on N ranks (data parallel): each step keeps its ranks x accum sequences, "
             "accum changes (default 0: as before)");
    p.AddBool("watch", &watch, "watch the session after resuming it");
    p.AddBool("table", &table, "with --watch: print a step table instead of the live view");
  }
  if (int r = ParseOrExit(p, args); r >= 0) return r;
  absl::StatusOr<std::string> id = ResolveSession(ctx, key);
  if (!id.ok()) return ctx.Fail(id.status());
  client::AnerdClient* client = *ctx.Client();
  v1::SessionInfo info;
  auto context = client->NewContext();
  grpc::Status st;
  if (verb == "show" || verb == "logdir") {
    v1::GetSessionRequest r;
    r.set_session_id(*id);
    st = client->stub()->GetSession(context.get(), r, &info);
  } else if (verb == "stop") {
    v1::StopSessionRequest r;
    r.set_session_id(*id);
    st = client->stub()->StopSession(context.get(), r, &info);
  } else {
    v1::ResumeSessionRequest r;
    r.set_session_id(*id);
    r.set_extra_steps(steps);
    if (ranks < 0 || ranks > INT32_MAX)
      return ctx.Fail(absl::InvalidArgumentError("--ranks: must be >= 0"));
    r.set_ranks(static_cast<int32_t>(ranks));
    st = client->stub()->ResumeSession(context.get(), r, &info);
  }
  if (!st.ok()) return ctx.Fail(CallStatus(st, ctx));
  if (verb == "logdir") {
    std::cout << (ctx.json() ? Json{{"schema_version", 1}, {"logdir", info.logdir()}}.dump()
                             : info.logdir())
              << "\n";
    return kExitOk;
  }
  // From the first new step: the state events just before it are included, and a run that
  // already finished is still shown.
  if (watch) return Watch(ctx, *id, info.step() + 1, /*from_now=*/false, table);
  if (ctx.json()) {
    std::cout << Json{{"schema_version", 1}, {"session", SessionJson(info)}}.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << ctx.Bold(info.id()) << "  " << info.name() << "\n"
            << absl::StrFormat("  %-11s %s%s\n", "state", info.state(),
                               info.state() == "paused" ? absl::StrCat(" (", ResumeHint(info), ")")
                               : verb == "stop"         ? " (stopping after a checkpoint)"
                                                        : "")
            << absl::StrFormat("  %-11s %d / %d\n", "step", info.step(), info.total_steps())
            << absl::StrFormat("  %-11s last %.4f, best %.4f\n", "loss", info.last_loss(),
                               info.best_loss())
            << absl::StrFormat("  %-11s %s (eta %s)\n", "elapsed",
                               FormatDuration(info.elapsed_seconds()),
                               info.eta_seconds() > 0 ? FormatDuration(info.eta_seconds()) : "-")
            << absl::StrFormat("  %-11s %s (step %d)\n", "checkpoint",
                               info.checkpoint_path().empty() ? "none" : info.checkpoint_path(),
                               info.checkpoint_step())
            << absl::StrFormat("  %-11s %s %s, %s numerics, data %s\n", "model",
                               info.spec().model(), info.spec().custom_config(),
                               info.spec().numerics(),
                               info.spec().data_artifact().empty()
                                   ? info.spec().data()
                                   : "artifact " + info.spec().data_artifact().substr(0, 12));
  if (info.spec().ranks() > 1) {
    std::cout << absl::StrFormat(
        "  %-11s %d on %s; %d restart%s of at most %d\n", "ranks", info.spec().ranks(),
        info.hosts().empty() ? "(not launched yet)" : absl::StrJoin(info.hosts(), ", "),
        info.restarts(), info.restarts() == 1 ? "" : "s", info.spec().max_restarts());
  }
  if (info.spec().validation().end_token() > 0) {
    const v1::ValidationRange& v = info.spec().validation();
    std::cout << absl::StrFormat(
        "  %-11s tokens [%d, %d) of %s; trained on %s\n", "held out", v.begin_token(),
        v.end_token(), v.source() == "data" ? "the data" : "the val data",
        v.source() == "data" ? absl::StrCat("the first ", v.train_tokens()) : "all of the data");
  }
  if (info.has_last_step()) {
    const v1::StepEvent& s = info.last_step();
    const std::vector<std::string> lines = StepDetailLines(s);
    std::cout << absl::StrFormat("  %-11s %d: %.2f ms, %.0f tok/s, %.3f TFLOPS\n", "last step",
                                 s.step(), s.step_ms(), s.tokens_per_s(), s.tflops())
              << absl::StrFormat("  %-11s %s\n", "", lines[0])
              << absl::StrFormat("  %-11s %s\n", "", lines[1]);
    if (lines.size() > 2) std::cout << absl::StrFormat("  %-11s %s\n", "", lines[2]);
  }
  if (info.has_best_val_loss()) {
    std::cout << absl::StrFormat("  %-11s %.4f at step %d (%s)\n", "best val", info.best_val_loss(),
                                 info.best_val_step(), info.best_checkpoint_path());
  }
  if (info.has_last_eval()) {
    const v1::EvalEvent& v = info.last_eval();
    std::cout << absl::StrFormat("  %-11s %.4f (ppl %.2f) at step %d on %s\n", "val loss", v.loss(),
                                 v.perplexity(), v.step(), v.source());
  }
  if (info.has_last_sample()) {
    const v1::SampleEvent& v = info.last_sample();
    std::cout << absl::StrFormat("  %-11s at step %d: %s|%s\n", "sample", v.step(), v.prompt(),
                                 v.text());
  }
  if (!info.owner().empty()) std::cout << absl::StrFormat("  %-11s %s\n", "owner", info.owner());
  if (!info.error().empty()) std::cout << "  " << ctx.Red("error: " + info.error()) << "\n";
  return kExitOk;
}

int WatchCmd(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string key;
  int64_t from = 0;
  bool now = false, table = false;
  ArgParser p(
      "anectl train watch ID [--from STEP] [--now] [--table]",
      "Streams a session's events. On a terminal: a live view (progress, latest step, phase "
      "breakdown); otherwise or with --json: one JSON object per event.");
  p.AddPositional("ID", &key, "session id, unique prefix or name");
  p.AddInt("from", &from, "replay from this step (default: the start)");
  p.AddBool("now", &now, "only new events");
  p.AddBool("table", &table, "a plain step table (good for logs)");
  if (int r = ParseOrExit(p, args); r >= 0) return r;
  absl::StatusOr<std::string> id = ResolveSession(ctx, key);
  if (!id.ok()) return ctx.Fail(id.status());
  return Watch(ctx, *id, from, now, table);
}

int Remove(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string key;
  ArgParser p("anectl train rm ID", "Deletes a session that is not running, with its files.");
  p.AddPositional("ID", &key, "session id, unique prefix or name");
  if (int r = ParseOrExit(p, args); r >= 0) return r;
  absl::StatusOr<std::string> id = ResolveSession(ctx, key);
  if (!id.ok()) return ctx.Fail(id.status());
  client::AnerdClient* client = *ctx.Client();
  v1::DeleteSessionRequest r;
  r.set_session_id(*id);
  v1::DeleteSessionResponse out;
  auto context = client->NewContext();
  grpc::Status st = client->stub()->DeleteSession(context.get(), r, &out);
  if (!st.ok()) return ctx.Fail(CallStatus(st, ctx));
  std::cout << "deleted " << *id << "\n";
  return kExitOk;
}

// Where an exported file named `name` goes: `dest` itself for the one-file formats, else
// `dest`/`name`. The daemon's file names are plain names; anything else is refused.
absl::StatusOr<std::string> ExportTarget(const std::string& format, const std::string& dest,
                                         const std::string& name) {
  if (name.empty() || name[0] == '.' || name.find('/') != std::string::npos) {
    return absl::InternalError("the daemon sent an export file name that is not a plain name: '" +
                               name + "'");
  }
  return format == "hf" ? dest + "/" + name : dest;
}

int Export(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string key, dest, format = "llama2c";
  bool best = false;
  ArgParser p("anectl train export ID [--format llama2c|hf|native] [--best] DEST",
              "Writes the session's latest weights (with --best: its best-validation checkpoint, "
              "kept by --eval-every): llama2c (default) a llama2.c model file DEST; "
              "hf a directory DEST with config.json and model.safetensors (transformers' "
              "AutoModelForCausalLM loads it); native anerd's checkpoint file DEST (with "
              "optimizer state). A model llama2.c cannot hold is refused with the reason.");
  p.AddString("format", &format, "llama2c | hf | native");
  p.AddBool("best", &best, "the checkpoint of the lowest validation loss, not the latest");
  p.AddPositional("ID", &key, "session id, unique prefix or name");
  p.AddPositional("DEST", &dest, "the file (llama2c, native) or directory (hf) to write");
  if (int r = ParseOrExit(p, args); r >= 0) return r;
  if (format != "llama2c" && format != "hf" && format != "native") {
    std::fprintf(stderr, "anectl: --format must be llama2c, hf or native\n");
    return kExitUsage;
  }
  absl::StatusOr<std::string> id = ResolveSession(ctx, key);
  if (!id.ok()) return ctx.Fail(id.status());
  if (format == "hf") {
    std::error_code ec;
    std::filesystem::create_directories(dest, ec);
    if (ec) return ctx.Fail(absl::PermissionDeniedError("cannot create directory " + dest));
  }
  client::AnerdClient* client = *ctx.Client();
  v1::ExportModelRequest r;
  r.set_session_id(*id);
  r.set_format(format);
  r.set_best(best);
  auto context = client->NewContext(absl::Minutes(30));
  auto reader = client->stub()->ExportModel(context.get(), r);
  // Each file goes to a ".part" file, renamed into place once the stream ended well.
  std::vector<std::pair<std::string, std::string>> parts;  // (part, final)
  auto discard = [&parts] {
    for (const auto& [part, target] : parts) std::remove(part.c_str());
  };
  std::ofstream out;
  v1::ExportModelChunk chunk;
  uint64_t written = 0;
  absl::Status failed;
  while (failed.ok() && reader->Read(&chunk)) {
    if (!chunk.file_name().empty() || parts.empty()) {
      absl::StatusOr<std::string> target =
          ExportTarget(format, dest, chunk.file_name().empty() ? "model.bin" : chunk.file_name());
      if (!target.ok()) {
        failed = target.status();
        break;
      }
      out.close();
      parts.push_back({*target + ".part", *target});
      out.open(parts.back().first, std::ios::binary | std::ios::trunc);
    }
    out.write(chunk.data().data(), chunk.data().size());
    if (!out) failed = absl::PermissionDeniedError("cannot write " + parts.back().first);
    written += chunk.data().size();
  }
  out.close();
  if (!failed.ok()) context->TryCancel();
  grpc::Status st = reader->Finish();
  if (failed.ok() && !st.ok()) failed = CallStatus(st, ctx);
  if (failed.ok() && parts.empty()) failed = absl::InternalError("the daemon sent no file");
  if (!failed.ok()) {
    discard();
    return ctx.Fail(failed);
  }
  for (const auto& [part, target] : parts) {
    if (std::rename(part.c_str(), target.c_str()) != 0) {
      discard();
      return ctx.Fail(absl::PermissionDeniedError("cannot rename " + part + " to " + target));
    }
  }
  if (ctx.json()) {
    Json files = Json::array();
    for (const auto& [part, target] : parts) files.push_back(target);
    std::cout << Json{{"schema_version", 1},
                      {"path", dest},
                      {"format", format},
                      {"files", files},
                      {"bytes", written}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << "wrote " << dest << " (" << (format == "llama2c" ? "" : format + ", ")
              << FormatBytes(written) << ")\n";
  }
  return kExitOk;
}

int Trace(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string key, out, steps = "100";
  ArgParser p("anectl train trace ID --out FILE.json [--steps N|A-B]",
              "Writes a Chrome/Perfetto trace (open it in ui.perfetto.dev or chrome://tracing) of "
              "spans the daemon measured: each step, its forward and backward passes, every kernel "
              "evaluation by name and layer, staging (io), the CPU ops, the dW GEMMs on their own "
              "thread, the optimizer, checkpoint writes and queue waits. The daemon keeps the "
              "spans of the session's current run in a bounded ring.");
  p.AddPositional("ID", &key, "session id, unique prefix or name");
  p.AddString("out", &out, "trace file to write (JSON)");
  p.AddString("steps", &steps, "the latest N steps, or steps A-B (default 100; at most 1000)");
  if (int r = ParseOrExit(p, args); r >= 0) return r;
  if (out.empty()) {
    std::fprintf(stderr, "anectl: train trace needs --out FILE\n");
    return kExitUsage;
  }
  absl::StatusOr<StepRange> range = ParseStepRange(steps);
  if (!range.ok()) return ctx.Fail(range.status());
  absl::StatusOr<std::string> id = ResolveSession(ctx, key);
  if (!id.ok()) return ctx.Fail(id.status());
  return WriteSessionTrace(ctx, *id, *range, out);
}

}  // namespace

absl::StatusOr<std::string> ResolveSessionId(CommandContext& ctx, const std::string& key) {
  return ResolveSession(ctx, key);
}

int RunTrain(CommandContext& ctx, const std::vector<std::string>& args) {
  static const auto* subcommands = new std::vector<Command>{
      {"start", "start a training session", Start},
      {"ls", "list sessions", List},
      {"show", "show one session",
       [](CommandContext& c, const std::vector<std::string>& a) {
         return SessionCall(c, a, "show");
       }},
      {"watch", "stream a session's steps (live view on a terminal)", WatchCmd},
      {"stop", "checkpoint and stop a session",
       [](CommandContext& c, const std::vector<std::string>& a) {
         return SessionCall(c, a, "stop");
       }},
      {"resume", "continue a session from its checkpoint",
       [](CommandContext& c, const std::vector<std::string>& a) {
         return SessionCall(c, a, "resume");
       }},
      {"logdir", "print the session's TensorBoard log directory",
       [](CommandContext& c, const std::vector<std::string>& a) {
         return SessionCall(c, a, "logdir");
       }},
      {"rm", "delete a session", Remove},
      {"export", "write the model as a llama2.c file, an HF checkpoint or a checkpoint", Export},
      {"trace", "write a Chrome/Perfetto trace of the latest steps' phases", Trace},
  };
  return RunSubcommand(ctx, "train", *subcommands, args);
}

}  // namespace anerd::anectl
