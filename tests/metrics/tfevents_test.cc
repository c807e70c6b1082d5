// TensorBoard event files: CRC-32C's known answer, byte equality with an independent encoder
// (tfevents_reference.py: TensorFlow's field numbers, python3-protobuf, its own CRC), every masked
// CRC of a written file checked by that script, reading mid-run, and a torn last record.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/metrics/crc32c.h"
#include "server/metrics/tfevents_reader.h"
#include "server/metrics/tfevents_writer.h"
#include "tensorboard/event.pb.h"
#include "tests/testing/temp_dir.h"

namespace anerd::metrics {
namespace {

constexpr uint64_t kMaxRecord = 1 << 20;

// Debian's interpreter has python3-protobuf; a pyenv python3 first on PATH may not.
std::string ProtobufPython() {
  for (const char* py : {"/usr/bin/python3", "python3"}) {
    const std::string probe = absl::StrCat(py, " -c 'import google.protobuf' >/dev/null 2>&1");
    if (std::system(probe.c_str()) == 0) return py;
  }
  return "";
}

std::string RunReference(const std::string& py, const std::string& args) {
  const std::string cmd =
      absl::StrCat(py, " ", ANERD_SOURCE_DIR, "/tests/metrics/tfevents_reference.py ", args);
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), pipe)) > 0;) out.append(buf, n);
  EXPECT_EQ(pclose(pipe), 0) << cmd;
  return out;
}

std::string OnlyFile(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files.push_back(entry.path());
  EXPECT_EQ(files.size(), 1u);
  return files.empty() ? "" : files[0];
}

TEST(Crc32cTest, KnownAnswer) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("56789", Crc32c("1234")), 0xE3069283u) << "continuation";
}

TEST(TfEventsTest, RecordBytesEqualAnIndependentEncoder) {
  const std::string py = ProtobufPython();
  if (py.empty()) GTEST_SKIP() << "no python3 with google.protobuf (python3-protobuf)";
  tensorboard::Event event;
  event.set_wall_time(1.5);
  event.set_step(3);
  for (auto [tag, value] : {std::pair{"loss", 0.0f}, std::pair{"lr", 2.5f}}) {
    tensorboard::SummaryValue* v = event.mutable_summary()->add_value();
    v->set_tag(tag);
    v->set_simple_value(value);
  }
  const std::string ours = absl::BytesToHexString(FrameRecord(event.SerializeAsString()));
  const std::string theirs = RunReference(py, "encode 3 1.5 loss=0 lr=2.5");
  EXPECT_EQ(ours + "\n", theirs) << "a zero scalar must still be written (TensorFlow's oneof)";
}

TEST(TfEventsTest, AWrittenFileIsReadableMidRunAndEveryCrcChecks) {
  const std::string py = ProtobufPython();
  if (py.empty()) GTEST_SKIP() << "no python3 with google.protobuf (python3-protobuf)";
  testing::TempDir tmp;
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  absl::StatusOr<std::unique_ptr<TfEventsWriter>> writer =
      TfEventsWriter::Create(tmp.path() + "/run", t0);
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_TRUE(absl::StrContains((*writer)->path(), "tfevents")) << (*writer)->path();
  for (int step = 1; step <= 3; ++step) {
    const std::vector<Scalar> scalars = {{"loss/train", 4.0f / step}, {"lr", 1e-3f}};
    ASSERT_TRUE((*writer)->WriteScalars(step, t0 + absl::Seconds(step), scalars).ok());
  }
  // The writer is still open: a reader sees every record written so far.
  const nlohmann::json records = nlohmann::json::parse(
      RunReference(py, "check " + (*writer)->path()), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(records.is_array()) << records;
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0]["file_version"], "brain.Event:2");
  EXPECT_EQ(records[3]["step"], 3);
  EXPECT_FLOAT_EQ(records[2]["scalars"]["loss/train"].get<float>(), 2.0f);
  EXPECT_DOUBLE_EQ(records[3]["wall_time"].get<double>(), 1700000003.0);
}

TEST(TfEventsTest, ATornLastRecordIsSkippedAndACorruptOneIsDataLoss) {
  testing::TempDir tmp;
  absl::StatusOr<std::unique_ptr<TfEventsWriter>> writer =
      TfEventsWriter::Create(tmp.path(), absl::Now());
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->WriteScalars(1, absl::Now(), std::vector<Scalar>{{"loss", 1.0f}}).ok());
  ASSERT_TRUE((*writer)->WriteScalars(2, absl::Now(), std::vector<Scalar>{{"loss", 0.5f}}).ok());
  const std::string path = OnlyFile(tmp.path());
  const uintmax_t size = std::filesystem::file_size(path);

  std::filesystem::resize_file(path, size - 3);  // a crash in the middle of the last append
  absl::StatusOr<TfRecords> torn = ReadTfRecordsFile(path, 1 << 20, kMaxRecord);
  ASSERT_TRUE(torn.ok()) << torn.status();
  EXPECT_TRUE(torn->torn_tail);
  ASSERT_EQ(torn->records.size(), 2u);
  tensorboard::Event second;
  ASSERT_TRUE(second.ParseFromString(torn->records[1]));
  EXPECT_EQ(second.step(), 1);

  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  bytes[20] ^= 0x40;  // inside the first record's data
  absl::StatusOr<TfRecords> corrupt = ParseTfRecords(bytes, kMaxRecord);
  EXPECT_EQ(corrupt.status().code(), absl::StatusCode::kDataLoss) << corrupt.status();
  EXPECT_TRUE(absl::StrContains(corrupt.status().message(), "byte 0")) << corrupt.status();
}

TEST(TfEventsTest, AHugeLengthIsRefusedBeforeAllocation) {
  std::string bytes = FrameRecord(std::string(64, 'x'));
  absl::StatusOr<TfRecords> big = ParseTfRecords(bytes, /*max_record_bytes=*/16);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument) << big.status();
  EXPECT_TRUE(absl::StrContains(big.status().message(), "over the bound 16")) << big.status();
}

TEST(TfEventsTest, CreateNeverOverwritesAndNamesAMissingParent) {
  testing::TempDir tmp;
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  absl::StatusOr<std::unique_ptr<TfEventsWriter>> a = TfEventsWriter::Create(tmp.path(), t);
  absl::StatusOr<std::unique_ptr<TfEventsWriter>> b = TfEventsWriter::Create(tmp.path(), t);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE((*a)->path(), (*b)->path());
  absl::StatusOr<std::unique_ptr<TfEventsWriter>> missing =
      TfEventsWriter::Create(tmp.path() + "/no/such/dir", t);
  EXPECT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "no/such/dir")) << missing.status();
}

}  // namespace
}  // namespace anerd::metrics
