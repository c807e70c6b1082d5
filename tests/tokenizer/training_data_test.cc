// The byte tokenizer keeps the ids of the training loader's text path, and TokenizeFile writes
// token files the loader reads (server/training/data.h).
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/tokenizer/kinds.h"
#include "common/tokenizer/tokenize_file.h"
#include "gtest/gtest.h"
#include "server/training/data.h"

namespace anerd::tokenizer {
namespace {

std::vector<int32_t> AllTokens(const training::TokenData& d) {
  std::vector<int32_t> out;
  for (int64_t i = 0; i < d.size(); ++i) out.push_back(static_cast<int32_t>(d.token(i)));
  return out;
}

std::string MakeTempDir() {
  char tmpl[] = "/tmp/anerd-tokdata-XXXXXX";
  return ::mkdtemp(tmpl) != nullptr ? std::string(tmpl) : std::string();
}

std::string LittleEndian32(const std::vector<uint32_t>& ids) {
  std::string bytes;
  for (uint32_t id : ids) {
    for (int b = 0; b < 4; ++b) bytes.push_back(static_cast<char>((id >> (8 * b)) & 0xFF));
  }
  return bytes;
}

TEST(TrainingData, ByteTokenizerIdsEqualTheLoadersTextIdsAndItsTokenFilesLoad) {
  char tmpl[] = "/tmp/anerd-tokdata-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string text = "Once upon a time, é日😀 don't\n\nThe end.\n";
  ASSERT_TRUE(WriteFileAtomically(dir + "/story.txt", text).ok());
  absl::StatusOr<std::unique_ptr<training::TokenData>> loaded =
      training::TokenData::Open(dir + "/story.txt", "text", 256, 4);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const std::vector<int32_t> from_loader = AllTokens(**loaded);
  std::unique_ptr<Tokenizer> bytes = MakeByteTokenizer();
  EXPECT_EQ(*bytes->Encode(text), from_loader);

  ASSERT_TRUE(TokenizeFile(*bytes, dir + "/story.txt", dir + "/story.bin", {}).ok());
  absl::StatusOr<std::unique_ptr<training::TokenData>> tokens =
      training::TokenData::Open(dir + "/story.bin", "tokens", 256, 4);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(AllTokens(**tokens), from_loader);
  std::filesystem::remove_all(dir);
}

// Ids above 65535 (Qwen3, Llama 3 vocabularies) travel in uint32 files named ".u32.bin"; the
// old loader read every ".bin" as uint16 and split each id into two.
TEST(TrainingData, Uint32TokenFilesLoadByTheirSuffixWithIdsAboveUint16) {
  const std::string dir = MakeTempDir();
  ASSERT_FALSE(dir.empty());
  const std::vector<uint32_t> ids = {70000, 3, 131071, 65536, 70000, 0};
  const std::string wide = dir + "/qwen.tokens.u32.bin";
  ASSERT_TRUE(WriteFileAtomically(wide, LittleEndian32(ids)).ok());

  absl::StatusOr<std::unique_ptr<training::TokenData>> d =
      training::TokenData::Open(wide, "", 151936, 2);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->size(), static_cast<int64_t>(ids.size()));
  EXPECT_EQ((*d)->id_bytes(), 4);
  EXPECT_EQ(AllTokens(**d), std::vector<int32_t>(ids.begin(), ids.end()));
  std::vector<uint32_t> window(3);
  (*d)->Copy(1, 3, window.data());
  EXPECT_EQ(window, (std::vector<uint32_t>{3, 131071, 65536}));
  EXPECT_EQ((*d)->UsedIds(), (std::vector<uint32_t>{0, 3, 65536, 70000, 131071}));
  // The explicit format reads the same bytes whatever the name.
  const std::string renamed = dir + "/data.raw";
  ASSERT_TRUE(WriteFileAtomically(renamed, LittleEndian32(ids)).ok());
  absl::StatusOr<std::unique_ptr<training::TokenData>> explicit_format =
      training::TokenData::Open(renamed, "tokens32", 151936, 2);
  ASSERT_TRUE(explicit_format.ok()) << explicit_format.status();
  EXPECT_EQ(AllTokens(**explicit_format), std::vector<int32_t>(ids.begin(), ids.end()));

  // Ids are checked against the vocabulary, naming the id and its index.
  absl::StatusOr<std::unique_ptr<training::TokenData>> small =
      training::TokenData::Open(wide, "", 100000, 2);
  ASSERT_EQ(small.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(small.status().message().find("token 131071 at index 2"), std::string::npos)
      << small.status();
  // A size that is not whole uint32 ids is refused.
  const std::string ragged = dir + "/ragged.u32.bin";
  ASSERT_TRUE(WriteFileAtomically(ragged, LittleEndian32(ids) + "xy").ok());
  absl::StatusOr<std::unique_ptr<training::TokenData>> bad =
      training::TokenData::Open(ragged, "", 151936, 2);
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("not a multiple of 4"), std::string::npos) << bad.status();
  // A plain ".bin" (llama2.c's format) stays uint16: the same bytes are twice as many ids.
  const std::string narrow = dir + "/llama2c.bin";
  ASSERT_TRUE(WriteFileAtomically(narrow, LittleEndian32({1, 2, 3})).ok());
  absl::StatusOr<std::unique_ptr<training::TokenData>> u16 =
      training::TokenData::Open(narrow, "", 256, 2);
  ASSERT_TRUE(u16.ok()) << u16.status();
  EXPECT_EQ(AllTokens(**u16), (std::vector<int32_t>{1, 0, 2, 0, 3, 0}));

  // TokenizeFile's uint32 output is what the loader reads.
  const std::string text = "uint32 ids: h\xc3\xa9llo\n\nagain\n";
  ASSERT_TRUE(WriteFileAtomically(dir + "/t.txt", text).ok());
  TokenizeFileOptions wide_ids;
  wide_ids.id_width = TokenizeFileOptions::IdWidth::kUint32;
  std::unique_ptr<Tokenizer> bytes = MakeByteTokenizer();
  ASSERT_TRUE(TokenizeFile(*bytes, dir + "/t.txt", dir + "/t.u32.bin", wide_ids).ok());
  absl::StatusOr<std::unique_ptr<training::TokenData>> tokenized =
      training::TokenData::Open(dir + "/t.u32.bin", "", 256, 4);
  ASSERT_TRUE(tokenized.ok()) << tokenized.status();
  EXPECT_EQ(AllTokens(**tokenized), *bytes->Encode(text));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace anerd::tokenizer
