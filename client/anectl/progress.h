// A one-line progress bar on stderr for transfers (artifact push/pull, train start's upload). It
// draws only when stderr is a terminal, at most ten times a second, and clears itself on Done, so
// scripts and pipes see no control characters.
//
// Thread-safety: one bar is used from one thread.
#ifndef ANERD_CLIENT_ANECTL_PROGRESS_H_
#define ANERD_CLIENT_ANECTL_PROGRESS_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "client/lib/artifacts.h"

namespace anerd::anectl {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar() { Done(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void Update(uint64_t done, uint64_t total);
  // Clears the line (once).
  void Done();
  // A callback for client::PushFile / PullToFile that updates this bar.
  client::ProgressFn Callback() {
    return [this](uint64_t done, uint64_t total) { Update(done, total); };
  }

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  absl::Time start_;
  absl::Time last_draw_ = absl::InfinitePast();
};

}  // namespace anerd::anectl

#endif  // ANERD_CLIENT_ANECTL_PROGRESS_H_
