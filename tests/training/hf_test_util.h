// Small helpers for the Hugging Face format tests that keep them linked against the training
// library only: a temp directory removed on destruction, and running a command for its output.
#ifndef ANERD_TESTS_TRAINING_HF_TEST_UTIL_H_
#define ANERD_TESTS_TRAINING_HF_TEST_UTIL_H_

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <string>
#include <vector>

namespace anerd::training::testing {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base != nullptr ? base : "/tmp") + "/anerd-hf-XXXXXX";
    if (::mkdtemp(templ.data()) != nullptr) path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct Ran {
  int exit_code = -1;
  std::string out;  // stdout and stderr
};

// Runs argv (each argument single-quoted for /bin/sh) and captures its combined output.
inline Ran Run(const std::vector<std::string>& argv) {
  std::string cmd;
  for (const std::string& a : argv) {
    std::string q = "'";
    for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    cmd += q + "' ";
  }
  cmd += "2>&1";
  Ran r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace anerd::training::testing

#endif  // ANERD_TESTS_TRAINING_HF_TEST_UTIL_H_
