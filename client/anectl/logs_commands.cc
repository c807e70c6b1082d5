// anectl logs: prints the daemon's rotating log file (anerd.log plus its rotated siblings
// anerd.1.log, anerd.2.log, ...). The CLI runs on the daemon's machine: the file is found from the
// daemon's state dir (GetInfo), or the default state dir when the daemon is down, or --file.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/anectl/commands.h"
#include "common/paths.h"

namespace anerd::anectl {
namespace {

struct LogsFlags {
  std::string file;
  std::string since;
  int64_t lines = 100;
  bool follow = false;
};

// The log file of the daemon anectl would talk to.
std::string FindLogFile(CommandContext& ctx) {
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (client.ok()) {
    absl::StatusOr<v1::GetInfoResponse> info = (*client)->GetInfo();
    if (info.ok()) return DefaultLogDir(info->state_dir()) + "/anerd.log";
  }
  return DefaultLogDir(DefaultStateDir()) + "/anerd.log";
}

// anerd.log -> anerd.N.log (spdlog's rotation names).
std::string RotatedName(const std::string& path, int n) {
  const size_t dot = path.rfind(".log");
  if (dot == std::string::npos) return absl::StrCat(path, ".", n);
  return absl::StrCat(path.substr(0, dot), ".", n, ".log");
}

// The files oldest first: anerd.K.log ... anerd.1.log, anerd.log.
std::vector<std::string> LogFiles(const std::string& path) {
  std::vector<std::string> rotated;
  for (int n = 1; n < 1000 && ::access(RotatedName(path, n).c_str(), R_OK) == 0; ++n) {
    rotated.push_back(RotatedName(path, n));
  }
  std::vector<std::string> files(rotated.rbegin(), rotated.rend());
  files.push_back(path);
  return files;
}

// The time at the start of a log line ("2024-05-01T12:00:00.123 ..."), local time.
bool LineTime(const std::string& line, absl::Time* t) {
  if (line.size() < 23) return false;
  return absl::ParseTime("%Y-%m-%dT%H:%M:%E3S", line.substr(0, 23), absl::LocalTimeZone(), t,
                         nullptr);
}

// Lines of every file at or after `since` (continuation lines follow their entry), keeping the
// last `max_lines` when since is InfinitePast. Sets *end_offset to the bytes read of the last file.
std::deque<std::string> CollectLines(const std::vector<std::string>& files, absl::Time since,
                                     size_t max_lines, std::streamoff* end_offset) {
  std::deque<std::string> out;
  bool keep = since == absl::InfinitePast();
  for (const std::string& file : files) {
    std::ostringstream content;
    content << std::ifstream(file).rdbuf();
    *end_offset = static_cast<std::streamoff>(content.str().size());
    std::istringstream in(content.str());
    for (std::string line; std::getline(in, line);) {
      absl::Time t;
      if (LineTime(line, &t)) keep = t >= since;
      if (!keep) continue;
      out.push_back(std::move(line));
      if (since == absl::InfinitePast() && out.size() > max_lines) out.pop_front();
    }
  }
  return out;
}

// Prints what is appended to `path` after `offset` until killed; reopens it when it is rotated
// or truncated.
[[noreturn]] void Follow(const std::string& path, std::streamoff offset) {
  std::ifstream in(path);
  in.seekg(offset);
  struct stat opened {};
  ::stat(path.c_str(), &opened);
  std::string line;
  for (;;) {
    while (std::getline(in, line)) std::cout << line << "\n";
    std::cout.flush();
    if (!in.eof()) break;
    in.clear();
    ::usleep(200 * 1000);
    struct stat now {};
    const std::streamoff position = in.tellg();
    if (::stat(path.c_str(), &now) == 0 &&
        (now.st_ino != opened.st_ino || now.st_size < position)) {
      in = std::ifstream(path);
      opened = now;
    }
  }
  std::fprintf(stderr, "anectl: reading %s failed\n", path.c_str());
  std::exit(kExitError);
}

}  // namespace

int RunLogs(CommandContext& ctx, const std::vector<std::string>& args) {
  LogsFlags f;
  ArgParser p("anectl logs [-f] [--since DURATION] [--lines N] [--file PATH]",
              "Prints the daemon's log (the rotating file under its state dir; macOS "
              "~/Library/Logs/anerd). Run it on the daemon's machine.");
  p.AddBool("follow", &f.follow, "-f: keep printing new lines (follows rotation)");
  p.AddString("since", &f.since, "only entries newer than this: 30s, 10m, 2h");
  p.AddInt("lines", &f.lines, "without --since: the last N lines (default 100)");
  p.AddString("file", &f.file, "read this log file instead of the daemon's");
  std::vector<std::string> expanded = args;
  for (std::string& a : expanded) {
    if (a == "-f") a = "--follow";
  }
  ArgParser::Result r = p.Parse(expanded);
  if (r != ArgParser::Result::kOk) return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  absl::Time since = absl::InfinitePast();
  if (!f.since.empty()) {
    absl::Duration d;
    if (!absl::ParseDuration(f.since, &d) || d < absl::ZeroDuration()) {
      std::fprintf(stderr, "anectl: --since wants a duration such as 30s, 10m or 2h\n");
      return kExitUsage;
    }
    since = absl::Now() - d;
  }
  if (f.lines < 0) {
    std::fprintf(stderr, "anectl: --lines must be >= 0\n");
    return kExitUsage;
  }
  const std::string path = f.file.empty() ? FindLogFile(ctx) : f.file;
  if (::access(path.c_str(), R_OK) != 0) {
    return ctx.Fail(absl::NotFoundError(absl::StrCat("no log file at ", path)));
  }
  std::streamoff end = 0;
  for (const std::string& line : CollectLines(LogFiles(path), since, f.lines, &end)) {
    std::cout << line << "\n";
  }
  std::cout.flush();
  if (f.follow) Follow(path, end);
  return kExitOk;
}

}  // namespace anerd::anectl
