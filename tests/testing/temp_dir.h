// A fresh directory under TMPDIR for one test, removed with its contents on destruction. Its own
// small library (no dependency on the daemon binaries), so unit tests can share it too.
// Not thread-safe; one per test (or per fixture).
#ifndef ANERD_TESTS_TESTING_TEMP_DIR_H_
#define ANERD_TESTS_TESTING_TEMP_DIR_H_

#include <string>

namespace anerd::testing {

class TempDir {
 public:
  TempDir();  // path() is "" when the directory could not be made
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace anerd::testing

#endif  // ANERD_TESTS_TESTING_TEMP_DIR_H_
