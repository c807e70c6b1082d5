// The safetensors reader and writer (server/training/safetensors.h): round trips of every dtype,
// sharded checkpoints, and each malformed header of issue 19's bad-input list refused with
// INVALID_ARGUMENT naming the file and the tensor or field.
#include "server/training/safetensors.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/training/hf_test_util.h"

namespace anerd::training {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A file image: the 8-byte length, `json`, then `data_bytes` zero bytes.
std::string Image(const std::string& json, int64_t data_bytes, int64_t declared = -1) {
  std::string out(8, '\0');
  const uint64_t n = declared >= 0 ? static_cast<uint64_t>(declared) : json.size();
  std::memcpy(out.data(), &n, 8);
  return out + json + std::string(data_bytes, '\0');
}

void ExpectInvalid(const std::string& image, const std::vector<std::string>& parts) {
  absl::StatusOr<StHeader> h = ParseSafetensorsImage(image, "ckpt/x.safetensors");
  ASSERT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument) << h.status();
  EXPECT_THAT(h.status().message(), HasSubstr("ckpt/x.safetensors"));
  for (const std::string& p : parts) EXPECT_THAT(h.status().message(), HasSubstr(p));
}

TEST(SafetensorsTest, ParsesAValidHeader) {
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}})";
  absl::StatusOr<StHeader> h = ParseSafetensorsImage(Image(json, 32), "x");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->data_start, 8 + static_cast<int64_t>(json.size()));
  EXPECT_EQ(h->metadata.at("format"), "pt");
  EXPECT_EQ(h->tensors.at("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(h->tensors.at("b").dtype, StDtype::kBF16);
  EXPECT_EQ(h->tensors.at("b").begin, 24);
}

TEST(SafetensorsTest, RefusesATruncatedHeader) {
  ExpectInvalid(std::string(5, '\0'), {"8-byte header length"});
  const std::string json = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  // The length claims more bytes than the file has.
  ExpectInvalid(Image(json, 0, json.size() + 10), {"runs past the end of the file"});
  // Cut inside the JSON.
  ExpectInvalid(Image(json.substr(0, json.size() - 3), 0), {"not a valid JSON object"});
}

TEST(SafetensorsTest, RefusesAnOversizedHeader) {
  ExpectInvalid(Image("{}", 0, kMaxSafetensorsHeaderBytes + 1), {"exceeds the limit"});
}

TEST(SafetensorsTest, RefusesOffsetsPastTheEnd) {
  ExpectInvalid(Image(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 12),
                {"tensor 'w'", "data_offsets", "past the end of the data section"});
}

TEST(SafetensorsTest, RefusesOverlappingTensors) {
  ExpectInvalid(Image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                      16),
                {"tensor 'b'", "overlaps tensor 'a'"});
}

TEST(SafetensorsTest, RefusesADtypeShapeByteMismatch) {
  ExpectInvalid(Image(R"({"w":{"dtype":"F16","shape":[3,2],"data_offsets":[0,24]}})", 24),
                {"tensor 'w'", "data_offsets", "24 bytes", "F16 needs 12"});
}

TEST(SafetensorsTest, RefusesMalformedEntries) {
  const std::pair<std::string, std::vector<std::string>> cases[] = {
      {R"({"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", {"'w'", "dtype", "I64"}},
      {R"({"w":{"shape":[1],"data_offsets":[0,4]}})", {"'w'", "dtype", "missing"}},
      {R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", {"'w'", "shape"}},
      {R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})",
       {"'w'", "shape", "9 dims"}},
      {R"({"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}})",
       {"'w'", "shape", "2^40"}},
      {R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", {"'w'", "data_offsets"}},
      {R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", {"'w'", "data_offsets"}},
      {R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", {"'w'", "x"}},
      {R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
       R"("w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
       {"'w'", "appears twice"}},
      {R"({"__metadata__":{"k":1}})", {"__metadata__", "'k'"}},
      {R"([1,2])", {"header"}},
      {R"({"w":7})", {"'w'", "not a JSON object"}},
  };
  for (const auto& [json, parts] : cases) {
    SCOPED_TRACE(json);
    ExpectInvalid(Image(json, 8), parts);
  }
}

TEST(SafetensorsTest, WritesAndReadsEveryDtype) {
  testing::TempDir dir;
  const std::vector<float> a = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, 65504.0f};
  const std::vector<float> b = {0.1f, -0.2f, 0.3f, 7.0f};
  const std::string path = dir.path() + "/model.safetensors";
  ASSERT_TRUE(WriteSafetensors(path,
                               {{"a32", StDtype::kF32, {2, 3}, a.data()},
                                {"a16", StDtype::kF16, {6}, a.data()},
                                {"b16", StDtype::kBF16, {2, 2}, b.data()}},
                               {{"format", "pt"}})
                  .ok());
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> r = SafetensorsReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->header().data_start % 8, 0);
  std::vector<float> got(6);
  ASSERT_TRUE((*r)->ReadF32("a32", {2, 3}, got.data()).ok());
  EXPECT_EQ(got, a);
  ASSERT_TRUE((*r)->ReadF32("a16", {6}, got.data()).ok());
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(got[i], a[i], std::fabs(a[i]) * 1e-3) << i;
  ASSERT_TRUE((*r)->ReadF32("b16", {2, 2}, got.data()).ok());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(got[i], Bf16ToFloat(FloatToBf16(b[i])));
    EXPECT_NEAR(got[i], b[i], std::fabs(b[i]) * 1e-2) << i;
  }
  absl::Status wrong = (*r)->ReadF32("a32", {3, 2}, got.data());
  EXPECT_EQ(wrong.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong.message(), AllOf(HasSubstr("'a32'"), HasSubstr("[2, 3]")));
}

TEST(SafetensorsTest, Bf16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(FloatToBf16(1.0f + 0x1p-8f), 0x3F80);
  EXPECT_EQ(FloatToBf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::nanf("")))));
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

TEST(SafetensorsTest, ReadsShardedCheckpoints) {
  testing::TempDir dir;
  const std::vector<float> a = {1, 2, 3, 4}, b = {5, 6};
  ASSERT_TRUE(
      WriteSafetensors(dir.path() + "/m-1.safetensors", {{"a", StDtype::kF32, {4}, a.data()}}, {})
          .ok());
  ASSERT_TRUE(
      WriteSafetensors(dir.path() + "/m-2.safetensors", {{"b", StDtype::kF32, {2}, b.data()}}, {})
          .ok());
  WriteText(dir.path() + "/model.safetensors.index.json",
            R"({"metadata":{},"weight_map":{"a":"m-1.safetensors","b":"m-2.safetensors"}})");
  absl::StatusOr<SafetensorsSet> set = SafetensorsSet::Open(dir.path());
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->Names(), (std::vector<std::string>{"a", "b"}));
  std::vector<float> got(2);
  ASSERT_TRUE(set->ReadF32("b", {2}, got.data()).ok());
  EXPECT_EQ(got, b);

  // A shard outside the directory, and a tensor the named shard does not hold.
  WriteText(dir.path() + "/model.safetensors.index.json",
            R"({"weight_map":{"a":"../m-1.safetensors"}})");
  absl::StatusOr<SafetensorsSet> escape = SafetensorsSet::Open(dir.path());
  EXPECT_EQ(escape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(escape.status().message(), AllOf(HasSubstr("index.json"), HasSubstr("'a'")));
  WriteText(dir.path() + "/model.safetensors.index.json",
            R"({"weight_map":{"b":"m-1.safetensors"}})");
  absl::StatusOr<SafetensorsSet> missing = SafetensorsSet::Open(dir.path());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("'b' is not in m-1.safetensors"));
}

TEST(SafetensorsTest, OpenChecksTheFileOnDisk) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/x.safetensors";
  WriteText(path, Image(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> r = SafetensorsReader::Open(path);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), AllOf(HasSubstr(path), HasSubstr("'w'")));
}

}  // namespace
}  // namespace anerd::training
