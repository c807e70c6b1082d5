#include "server/sessions/mpi_launch.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"

namespace anerd::sessions {
namespace {

constexpr size_t kMaxErrorTail = 600;  // bytes of mpirun's stderr quoted in an error

// "rank R on H: message" from the last "anerd-rank: rank R on H: message" line, or "".
std::string RankErrorLine(absl::string_view tail) {
  const absl::string_view marker = "anerd-rank: rank ";
  const size_t at = tail.rfind(marker);
  if (at == absl::string_view::npos) return "";
  absl::string_view line = tail.substr(at + marker.size());
  line = line.substr(0, line.find('\n'));
  return absl::StrCat("rank ", absl::StripAsciiWhitespace(line));
}

// "rank R on host H exited on signal S ..." from mpirun's notice, or "".
std::string MpirunNotice(absl::string_view tail) {
  const absl::string_view marker = "process rank ";
  const size_t at = tail.rfind(marker);
  if (at == absl::string_view::npos) return "";
  absl::string_view line = tail.substr(at + marker.size());
  line = line.substr(0, line.find('\n'));
  // "1 with PID 1234 on node mac2 exited on signal 9 (Killed)."
  std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
  std::string rank = words.empty() ? "?" : std::string(words[0]);
  std::string host, rest;
  for (size_t i = 0; i + 1 < words.size(); ++i) {
    if (words[i] == "node") {
      host = std::string(words[i + 1]);
      for (size_t j = i + 2; j < words.size(); ++j) absl::StrAppend(&rest, " ", words[j]);
      break;
    }
  }
  if (host.empty()) return absl::StrCat("rank ", absl::StripAsciiWhitespace(line));
  return absl::StrCat("rank ", rank, " on host ", host, rest);
}

std::string ExitText(int wait_status) {
  if (WIFEXITED(wait_status)) return absl::StrCat("mpirun exited with ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status))
    return absl::StrCat("mpirun ended by signal ", WTERMSIG(wait_status));
  return "mpirun ended";
}

}  // namespace

std::vector<std::string> BuildMpirunArgv(const RankLaunch& l) {
  std::vector<std::string> argv = {l.mpirun, "-np", std::to_string(l.ranks)};
  if (!l.hostfile.empty()) {
    argv.insert(argv.end(), {"--hostfile", l.hostfile});
  } else {
    // One host: more ranks than cores is fine (tests, small machines), and the ranks talk
    // through shared memory with no network interface probed.
    argv.insert(argv.end(), {"--oversubscribe", "--mca", "btl", "self,vader", "--mca",
                             "btl_vader_single_copy_mechanism", "none"});
  }
  if (l.as_root) argv.push_back("--allow-run-as-root");
  argv.push_back(l.rank_binary);
  if (l.resume_checkpoint.empty()) {
    argv.push_back("--spec=" + l.spec_path);
  } else {
    argv.push_back("--resume=" + l.resume_checkpoint);
    argv.push_back(absl::StrCat("--extra-steps=", l.extra_steps));
  }
  argv.insert(argv.end(), {"--backend=" + l.backend, "--checkpoint=" + l.checkpoint_path,
                           "--checkpoint-per-step", "--events=-"});
  argv.insert(argv.end(), l.extra_rank_args.begin(), l.extra_rank_args.end());
  return argv;
}

absl::StatusOr<std::vector<std::string>> ParseHostfile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path, kMaxHostfileBytes);
  if (!text.ok()) {
    return absl::NotFoundError(
        absl::StrCat("hostfile ", path, ": cannot be read: ", text.status().message()));
  }
  std::vector<std::string> hosts;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_no;
    line = line.substr(0, line.find('#'));
    std::vector<absl::string_view> words =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (words.empty()) continue;
    const std::string host(words[0]);
    for (size_t i = 1; i < words.size(); ++i) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(words[i], '=');
      int n = 0;
      const bool known = kv.first == "slots" || kv.first == "max_slots" || kv.first == "max-slots";
      if (!known || !absl::SimpleAtoi(kv.second, &n) || n < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("hostfile ", path, " line ", line_no, ": host ", host, ": '", words[i],
                         "' is not slots=N or max_slots=N with N >= 1"));
      }
    }
    hosts.push_back(host);
  }
  if (hosts.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("hostfile ", path, ": names no host"));
  }
  return hosts;
}

absl::Status CheckHostsResolve(const std::string& path, const std::vector<std::string>& hosts) {
  for (const std::string& host : hosts) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
    if (found != nullptr) freeaddrinfo(found);
    if (rc != 0) {
      return absl::UnavailableError(absl::StrCat("hostfile ", path, ": host ", host,
                                                 " does not resolve: ", gai_strerror(rc)));
    }
  }
  return absl::OkStatus();
}

std::string DescribeJobFailure(int wait_status, absl::string_view tail) {
  std::string what = RankErrorLine(tail);
  if (what.empty()) what = MpirunNotice(tail);
  if (what.empty()) {
    absl::string_view end = absl::StripAsciiWhitespace(tail);
    if (end.size() > kMaxErrorTail) end = end.substr(end.size() - kMaxErrorTail);
    what = end.empty() ? "no error output" : absl::StrCat("mpirun: ", end);
  }
  return absl::StrCat(what, " (", ExitText(wait_status), ")");
}

void ReplayFilter::Reset(int64_t replay_until, std::map<int64_t, double> logged) {
  replay_until_ = replay_until;
  logged_ = std::move(logged);
  while (logged_.size() > kMaxLoggedLosses) logged_.erase(logged_.begin());
}

ReplayFilter::Verdict ReplayFilter::Classify(int64_t step, double loss) const {
  if (step > replay_until_) return Verdict::kNew;
  auto it = logged_.find(step);
  if (it == logged_.end()) return Verdict::kReplayed;
  const bool same = it->second == loss || (std::isnan(it->second) && std::isnan(loss));
  return same ? Verdict::kReplayed : Verdict::kReplayedDiffers;
}

}  // namespace anerd::sessions
