// Weight paths, the blob-file reader (ResolveBlob) and writer (BlobWriter), int8 quantisation.
#include "common/mil/blob_file.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/fp16.h"
#include "common/mil/blob_writer.h"
#include "common/mil/weights.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd::mil {
namespace {

using ::testing::HasSubstr;

uint32_t U32At(const std::string& s, size_t at) {
  uint32_t v;
  std::memcpy(&v, s.data() + at, 4);
  return v;
}
uint64_t U64At(const std::string& s, size_t at) {
  uint64_t v;
  std::memcpy(&v, s.data() + at, 8);
  return v;
}
void PutU32(std::string* s, size_t at, uint32_t v) { std::memcpy(&(*s)[at], &v, 4); }
void PutU64(std::string* s, size_t at, uint64_t v) { std::memcpy(&(*s)[at], &v, 8); }

TensorType T(DType dtype, std::vector<int64_t> shape) {
  return TensorType{dtype, std::move(shape)};
}

WeightFiles OneFile(std::string bytes, const std::string& name = "w.bin") {
  WeightFiles files;
  EXPECT_TRUE(files.Add(name, std::move(bytes)).ok());
  return files;
}

BlobRef Ref(uint64_t offset) { return BlobRef{"@model_path/weights/w.bin", offset}; }

TEST(CanonicalWeightPathTest, AcceptsEverySpelling) {
  for (const char* p : {"@model_path/weights/w.bin", "weights/w.bin", "w.bin"}) {
    auto key = CanonicalWeightPath(p);
    ASSERT_TRUE(key.ok()) << p << ": " << key.status();
    EXPECT_EQ(*key, "weights/w.bin");
  }
  EXPECT_EQ(*CanonicalWeightPath("weights/sub/a.bin"), "weights/sub/a.bin");
}

TEST(CanonicalWeightPathTest, RejectsUnsafePaths) {
  for (const char* p : {"", "/etc/passwd", "../w.bin", "weights/../w.bin", "weights/", "weights//a",
                        "@model_path/other/w.bin", "other/w.bin", "weights/./a", "weights/a\\b",
                        "@model_path/w.bin"}) {
    auto key = CanonicalWeightPath(p);
    EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument) << "'" << p << "'";
  }
}

TEST(WeightFilesTest, AddFindAndDuplicates) {
  WeightFiles files;
  ASSERT_TRUE(files.Add("@model_path/weights/a.bin", "abc").ok());
  ASSERT_TRUE(files.Add("b.bin", "de").ok());
  EXPECT_EQ(files.Add("weights/a.bin", "x").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(files.Add("../a.bin", "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(files.size(), 2u);
  EXPECT_EQ(files.total_bytes(), 5u);
  ASSERT_NE(files.Find("a.bin"), nullptr);
  EXPECT_EQ(*files.Find("weights/a.bin"), "abc");
  EXPECT_EQ(*files.Find("@model_path/weights/b.bin"), "de");
  EXPECT_EQ(files.Find("c.bin"), nullptr);
  EXPECT_EQ(files.Find("/abs"), nullptr);
  EXPECT_EQ(files.files().begin()->first, "weights/a.bin");
}

// The exact byte layout of docs/ANE_NOTES.md §2.1 ("128-byte header" single fp16 tensor).
TEST(BlobWriterTest, SingleFp16MatchesSpecLayout) {
  const std::vector<float> w = {1.0f, -2.0f, 0.5f};
  const std::string file = BuildFp16Blob(w);
  ASSERT_EQ(file.size(), 192u);  // 64 header + 64 record + 6 data, padded to 64
  EXPECT_EQ(U32At(file, 0), 1u);
  EXPECT_EQ(U32At(file, 4), 2u);
  for (size_t i = 8; i < 64; ++i) EXPECT_EQ(file[i], 0) << i;
  EXPECT_EQ(U32At(file, 64), 0xDEADBEEFu);
  EXPECT_EQ(U32At(file, 68), 1u);
  EXPECT_EQ(U64At(file, 72), 6u);
  EXPECT_EQ(U64At(file, 80), 128u);
  for (size_t i = 88; i < 128; ++i) EXPECT_EQ(file[i], 0) << i;
  uint16_t h[3];
  std::memcpy(h, file.data() + 128, 6);
  EXPECT_EQ(h[0], 0x3C00);
  EXPECT_EQ(h[1], 0xC000);
  EXPECT_EQ(h[2], 0x3800);
  for (size_t i = 134; i < 192; ++i) EXPECT_EQ(file[i], 0) << i;
}

TEST(BlobWriterTest, MultiEntryRoundTripsEveryDtype) {
  BlobWriter writer;
  const std::vector<float> f16 = {0.25f, 3.0f, -1.5f, 1000.0f, 7.0f};
  const std::vector<float> f32 = {1e-8f, 3.14159265f, -2.5e30f};
  const std::vector<int8_t> i8 = {-128, -1, 0, 1, 127};
  const std::vector<uint8_t> u8 = {0, 200, 255};
  const uint64_t o1 = writer.AddFp16(f16);
  const uint64_t o2 = writer.AddFp32(f32);
  const uint64_t o3 = writer.AddInt8(i8);
  const uint64_t o4 = writer.AddUInt8(u8);
  EXPECT_EQ(o1, 64u);
  for (uint64_t o : {o2, o3, o4}) EXPECT_EQ(o % 64, 0u);
  EXPECT_EQ(writer.count(), 4u);
  EXPECT_EQ(U32At(writer.bytes(), 0), 4u);
  EXPECT_EQ(U32At(writer.bytes(), o3 + 4), 4u);  // Int8 = 4
  EXPECT_EQ(U32At(writer.bytes(), o4 + 4), 3u);  // UInt8 = 3
  WeightFiles files = OneFile(std::move(writer).Release());

  std::vector<Diagnostic> warnings;
  auto d1 = ResolveBlob(files, Ref(o1), T(DType::kFp16, {1, 5}), &warnings);
  ASSERT_TRUE(d1.ok()) << d1.status();
  for (size_t i = 0; i < f16.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, d1->data() + 2 * i, 2);
    EXPECT_EQ(HalfToFloat(h), f16[i]);
  }
  auto d2 = ResolveBlob(files, Ref(o2), T(DType::kFp32, {3}), &warnings);
  ASSERT_TRUE(d2.ok()) << d2.status();
  EXPECT_EQ(0, std::memcmp(d2->data(), f32.data(), 12));
  auto d3 = ResolveBlob(files, Ref(o3), T(DType::kInt8, {5, 1, 1, 1}), &warnings);
  ASSERT_TRUE(d3.ok()) << d3.status();
  EXPECT_EQ(0, std::memcmp(d3->data(), i8.data(), 5));
  auto d4 = ResolveBlob(files, Ref(o4), T(DType::kUInt8, {3}), &warnings);
  ASSERT_TRUE(d4.ok()) << d4.status();
  EXPECT_EQ(0, std::memcmp(d4->data(), u8.data(), 3));
  EXPECT_TRUE(warnings.empty()) << warnings.front().message;
}

TEST(ReadBlobRecordTest, ReadsFieldsAndRejectsOutOfRange) {
  const std::string file = BuildInt8Blob(std::vector<int8_t>(70, 1));
  auto rec = ReadBlobRecord(file, 64);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->dtype_code, 4u);
  EXPECT_EQ(rec->size_bytes, 70u);
  EXPECT_EQ(rec->data_offset, 128u);
  EXPECT_FALSE(ReadBlobRecord(file, file.size() - 63).ok());
  EXPECT_FALSE(ReadBlobRecord(file, std::numeric_limits<uint64_t>::max() - 10).ok());
  EXPECT_THAT(std::string(ReadBlobRecord(file, 0).status().message()), HasSubstr("sentinel"));
}

// Asserts that resolving `file` at `offset` as `type` fails with a message containing `what`.
void ExpectError(std::string file, uint64_t offset, const TensorType& type, const char* what) {
  WeightFiles files = OneFile(std::move(file));
  auto r = ResolveBlob(files, Ref(offset), type, nullptr);
  ASSERT_FALSE(r.ok()) << what;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(what));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("w.bin"));
}

TEST(ResolveBlobTest, RejectsCorruptFiles) {
  const std::string good = BuildFp16Blob(std::vector<float>(32, 1.0f));  // 64 data bytes
  const TensorType t = T(DType::kFp16, {1, 32});
  ASSERT_TRUE(ResolveBlob(OneFile(good), Ref(64), t, nullptr).ok());

  std::string bad = good;
  PutU32(&bad, 64, 0xDEADBEEE);
  ExpectError(bad, 64, t, "sentinel");
  bad = good;
  PutU32(&bad, 4, 1);
  ExpectError(bad, 64, t, "version");
  bad = good;
  PutU32(&bad, 0, 0);
  ExpectError(bad, 64, t, "no entries");
  bad = good;
  PutU32(&bad, 0, 1000);
  ExpectError(bad, 64, t, "more than the file");
  ExpectError(good.substr(0, 40), 64, t, "shorter");
  ExpectError(good, 65, t, "multiple of 64");
  ExpectError(good, 0, t, "multiple of 64");
  ExpectError(good, 192, t, "past the end");
  ExpectError(good, uint64_t{1} << 63, t, "past the end");
  ExpectError(good, 64, T(DType::kFp16, {1, 33}), "past the end");
  ExpectError(good.substr(0, 150), 64, t, "past the end");
  ExpectError(good, 64, T(DType::kFp16, {int64_t{1} << 40, int64_t{1} << 40}), "overflow");
  ExpectError(good, 64, T(DType::kInt32, {1, 16}), "no weight-blob encoding");
  bad = good;
  PutU64(&bad, 80, 130);  // misaligned data offset
  ExpectError(bad, 64, t, "misaligned");
  bad = good;
  PutU64(&bad, 80, 64);  // overlapping its own record
  ExpectError(bad, 64, t, "overlaps");
  bad = good;
  PutU64(&bad, 80, std::numeric_limits<uint64_t>::max() - 63);  // data offset + size overflows
  ExpectError(bad, 64, t, "past the end");
  WeightFiles none;
  EXPECT_THAT(std::string(ResolveBlob(none, Ref(64), t, nullptr).status().message()),
              HasSubstr("not supplied"));
}

// The seed's benchmark files (docs/ANE_NOTES.md §2.2): count stays 1 for N chunks, metadata has
// only dtype byte 1 (Float16 even for int8 data) and byte 10 = 0x08 (stale size 0x80000), no data
// offset.
std::string SeedBenchmarkFile(int chunks, int ch, int elem_bytes, std::vector<std::string>* data) {
  const size_t cs = 64 + static_cast<size_t>(elem_bytes) * ch * ch;
  std::string file(64 + chunks * cs, '\0');
  file[0] = 1;
  file[4] = 2;
  for (int i = 0; i < chunks; ++i) {
    const size_t chunk = 64 + i * cs;
    PutU32(&file, chunk, 0xDEADBEEF);
    file[chunk + 4] = 1;
    file[chunk + 10] = 0x08;
    std::string d(cs - 64, '\0');
    for (size_t j = 0; j < d.size(); ++j) d[j] = static_cast<char>((j * 7 + i * 13) & 0xff);
    file.replace(chunk + 64, d.size(), d);
    data->push_back(std::move(d));
  }
  return file;
}

TEST(ResolveBlobTest, SeedBenchmarkFilesResolveWithWarnings) {
  std::vector<std::string> data;
  WeightFiles files = OneFile(SeedBenchmarkFile(3, 256, 2, &data));
  const uint64_t cs = 64 + 2 * 256 * 256;
  std::vector<Diagnostic> warnings;
  auto r = ResolveBlob(files, Ref(64 + 2 * cs), T(DType::kFp16, {256, 256, 1, 1}), &warnings);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, data[2]);
  ASSERT_EQ(warnings.size(), 2u);  // unset data offset, stale size
  for (const Diagnostic& d : warnings) EXPECT_EQ(d.severity, Diagnostic::Severity::kWarning);
  EXPECT_THAT(warnings[0].message, HasSubstr("data offset unset"));
  EXPECT_THAT(warnings[1].message, HasSubstr("record size 524288"));

  data.clear();
  WeightFiles int8_files = OneFile(SeedBenchmarkFile(2, 128, 1, &data));
  warnings.clear();
  auto q = ResolveBlob(int8_files, Ref(64 + 64 + 128 * 128), T(DType::kInt8, {128, 128, 1, 1}),
                       &warnings);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(*q, data[1]);
  ASSERT_EQ(warnings.size(), 3u);
  EXPECT_THAT(warnings[2].message, HasSubstr("dtype code 1"));
}

TEST(QuantizeTest, PerTensorRoundsHalfToEvenAndClamps) {
  const std::vector<float> v = {127.0f, 2.5f, -3.5f, 0.0f, -127.0f, 1.5f};
  Int8Quantized q = QuantizeInt8PerTensor(v);
  ASSERT_EQ(q.scales.size(), 1u);
  EXPECT_EQ(q.scales[0], 1.0f);
  EXPECT_EQ(q.data, (std::vector<int8_t>{127, 2, -4, 0, -127, 2}));

  Int8Quantized zeros = QuantizeInt8PerTensor(std::vector<float>(4, 0.0f));
  EXPECT_EQ(zeros.scales[0], 1.0f);
  EXPECT_EQ(zeros.data, std::vector<int8_t>(4, 0));
}

TEST(QuantizeTest, PerTensorErrorIsWithinHalfAStep) {
  std::vector<float> v;
  for (int i = 0; i < 200; ++i) v.push_back(0.37f * static_cast<float>(i % 17) - 2.9f);
  Int8Quantized q = QuantizeInt8PerTensor(v);
  const float s = q.scales[0];
  EXPECT_EQ(s, RoundToHalf(s));  // representable as an fp16 literal
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_LE(std::abs(q.data[i] * s - v[i]), s * 0.5f + 1e-6f) << i;
  }
}

TEST(QuantizeTest, PerChannelHasOneScalePerRow) {
  const std::vector<float> v = {1.0f, -0.5f, 0.25f, 100.0f, 50.0f, -25.0f};
  auto q = QuantizeInt8PerChannel(v, 2);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(q->scales.size(), 2u);
  EXPECT_EQ(q->scales[0], RoundToHalf(1.0f / 127.0f));
  EXPECT_EQ(q->scales[1], RoundToHalf(100.0f / 127.0f));
  EXPECT_EQ(q->data[0], 127);
  EXPECT_EQ(q->data[3], 127);
  EXPECT_NEAR(q->data[4] * q->scales[1], 50.0f, q->scales[1] * 0.5f);
  EXPECT_FALSE(QuantizeInt8PerChannel(v, 4).ok());
  EXPECT_FALSE(QuantizeInt8PerChannel(v, 0).ok());
}

}  // namespace
}  // namespace anerd::mil
