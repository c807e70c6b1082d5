// Token data and model files named by a client are opened without blocking: a FIFO is refused
// with INVALID_ARGUMENT naming the path (issue 16 item 3: open() of a FIFO used to wait for a
// writer on the device executor, wedging every compile, evaluation, session and SIGTERM).
#include <sys/stat.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/training/data.h"
#include "server/training/model_io.h"
#include "tests/testing/process_harness.h"

namespace anerd::training {
namespace {

using ::testing::HasSubstr;

TEST(SpecialFilesTest, TokenDataAndModelFilesRefuseAFifo) {
  testing::TempDir dir;
  const std::string fifo = dir.path() + "/data.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const char* format : {"tokens", "text"}) {
    absl::StatusOr<std::unique_ptr<TokenData>> data = TokenData::Open(fifo, format, 256, 8);
    ASSERT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument) << data.status();
    EXPECT_THAT(data.status().message(), HasSubstr(fifo));
    EXPECT_THAT(data.status().message(), HasSubstr("FIFO"));
  }
  absl::StatusOr<LoadedModel> model = LoadModelFile(fifo);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument) << model.status();
  EXPECT_THAT(model.status().message(), HasSubstr("FIFO"));
}

}  // namespace
}  // namespace anerd::training
