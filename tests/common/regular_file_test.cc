// Files a client names are opened without blocking: a FIFO (which a plain open() for reading
// would wait on until a writer appears), a directory or a socket is refused with
// INVALID_ARGUMENT naming the path and its kind; regular files open and read as before. Before
// the fix each FIFO case below blocked forever in open().
#include "common/regular_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "common/atomic_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using ::testing::HasSubstr;

class RegularFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fifo_ = dir_.path() + "/tokens.fifo";
    ASSERT_EQ(::mkfifo(fifo_.c_str(), 0600), 0);
  }
  testing::TempDir dir_;
  std::string fifo_;
};

TEST_F(RegularFileTest, AFifoIsRefusedWithoutWaitingForAWriter) {
  absl::StatusOr<RegularFile> file = OpenRegularFile(fifo_, "token data");
  ASSERT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << file.status();
  EXPECT_THAT(file.status().message(), HasSubstr("token data " + fifo_));
  EXPECT_THAT(file.status().message(), HasSubstr("a FIFO"));
  absl::Status checked = CheckRegularFile(fifo_, "data");
  EXPECT_EQ(checked.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(checked.message(), HasSubstr("a FIFO"));
}

TEST_F(RegularFileTest, ReadFileToStringRefusesAFifoWithoutBlocking) {
  absl::StatusOr<std::string> bytes = ReadFileToString(fifo_, 1 << 20);
  ASSERT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument) << bytes.status();
  EXPECT_THAT(bytes.status().message(), HasSubstr("FIFO"));
}

TEST_F(RegularFileTest, DirectoriesAreRefusedAndRegularFilesOpen) {
  EXPECT_THAT(OpenRegularFile(dir_.path(), "model file").status().message(),
              HasSubstr("a directory"));
  const std::string path = dir_.path() + "/f.bin";
  std::ofstream(path) << "abcd";
  absl::StatusOr<RegularFile> file = OpenRegularFile(path, "model file");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->st.st_size, 4);
  char buf[4];
  EXPECT_EQ(::read(file->fd.get(), buf, 4), 4) << "blocking reads work as before";
  EXPECT_TRUE(CheckRegularFile(path, "data").ok());
  EXPECT_EQ(OpenRegularFile(dir_.path() + "/missing", "data").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace anerd
