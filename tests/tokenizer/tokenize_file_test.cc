// TokenizeFile: documents, id widths, progress, cancellation and bad input, on temp files.
#include "common/tokenizer/tokenize_file.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/tokenizer/kinds.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd::tokenizer {
namespace {

using ::testing::HasSubstr;

class TokenizeFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/anerd-tokfile-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    EXPECT_TRUE(WriteFileAtomically(path, text).ok());
    return path;
  }
  std::vector<std::string> Files() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  static std::vector<int32_t> ReadIds(const std::string& path, int width) {
    absl::StatusOr<std::string> bytes = ReadFileToString(path, 1 << 28);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    std::vector<int32_t> ids;
    for (size_t i = 0; bytes.ok() && i + width <= bytes->size(); i += width) {
      uint32_t v = 0;
      for (int k = 0; k < width; ++k)
        v |= uint32_t{static_cast<unsigned char>((*bytes)[i + k])} << (8 * k);
      ids.push_back(static_cast<int32_t>(v));
    }
    return ids;
  }
  static std::unique_ptr<Tokenizer> Fixture(const std::string& name) {
    auto t =
        LoadTokenizerFile("", std::string(ANERD_SOURCE_DIR) + "/tests/tokenizer/testdata/" + name);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(*t) : nullptr;
  }

  std::string dir_;
};

TEST_F(TokenizeFileTest, ByteIdsOfALargeFileAcrossBlocks) {
  std::string text;
  for (int i = 0; text.size() < (size_t{3} << 20); ++i) {
    text += "Story " + std::to_string(i) + " é日\nsecond line\n\n";
  }
  const std::string in = Write("in.txt", text);
  std::vector<int64_t> done;
  absl::StatusOr<TokenizeFileResult> r =
      TokenizeFile(*MakeByteTokenizer(), in, dir_ + "/out.bin", {}, [&](int64_t d, int64_t total) {
        EXPECT_EQ(total, static_cast<int64_t>(text.size()));
        done.push_back(d);
        return true;
      });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->bytes_read, static_cast<int64_t>(text.size()));
  EXPECT_EQ(r->tokens, static_cast<int64_t>(text.size()));
  EXPECT_GT(r->documents, 1000);
  EXPECT_EQ(r->id_bytes, 2);
  std::vector<int32_t> expected(text.begin(), text.end());
  for (int32_t& v : expected) v &= 0xFF;
  EXPECT_EQ(ReadIds(dir_ + "/out.bin", 2), expected);
  ASSERT_GE(done.size(), 3u);  // one call per 1 MiB block
  EXPECT_TRUE(std::is_sorted(done.begin(), done.end()));
  EXPECT_EQ(done.back(), static_cast<int64_t>(text.size()));
}

TEST_F(TokenizeFileTest, DocumentsEndAfterBlankLinesAndEachGetsBos) {
  std::unique_ptr<Tokenizer> t = Fixture("tiny_tokenizer.bin");
  ASSERT_NE(t, nullptr);
  const std::vector<std::string> docs = {"don't\n\n", "ab a\nba\n\n\n", "12 é"};
  std::string text;
  std::vector<int32_t> expected;
  for (const std::string& d : docs) {
    text += d;
    const std::vector<int32_t> ids = *t->Encode(d, {true, false});
    expected.insert(expected.end(), ids.begin(), ids.end());
  }
  TokenizeFileOptions options;
  options.add_bos = true;
  absl::StatusOr<TokenizeFileResult> r =
      TokenizeFile(*t, Write("in.txt", text), dir_ + "/out.bin", options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->documents, 3);
  EXPECT_EQ(ReadIds(dir_ + "/out.bin", 2), expected);
}

TEST_F(TokenizeFileTest, QwenPatternGivesTheWholeTextIdsEvenWhenDocumentsAreCut) {
  std::unique_ptr<Tokenizer> t = Fixture("tiny_tokenizer.json");
  ASSERT_NE(t, nullptr);
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += "the don't " + std::to_string(i) + " é\n" + (i % 7 ? "" : "\n\n");
  TokenizeFileOptions options;
  options.max_document_bytes = 40;  // forces cuts after a line within the bound
  absl::StatusOr<TokenizeFileResult> r =
      TokenizeFile(*t, Write("in.txt", text), dir_ + "/out.bin", options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->documents, 60);  // 29 from blank lines alone
  EXPECT_EQ(ReadIds(dir_ + "/out.bin", 2), *t->Encode(text));
}

TEST_F(TokenizeFileTest, InvalidUtf8NamesTheFileOffsetAndLeavesNothing) {
  std::string text(size_t{3} << 19, 'a');  // 1.5 MiB: the bad byte is in the second block
  for (size_t i = 100; i < text.size(); i += 100) text[i] = '\n';
  text[1'500'001] = '\xFF';
  const std::string in = Write("in.txt", text);
  absl::StatusOr<TokenizeFileResult> r =
      TokenizeFile(*Fixture("tiny_tokenizer.json"), in, dir_ + "/out.bin", {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(in + ": invalid UTF-8 at byte offset 1500001"));
  EXPECT_EQ(Files(), std::vector<std::string>{"in.txt"});
  // The byte tokenizer takes any bytes.
  EXPECT_TRUE(TokenizeFile(*MakeByteTokenizer(), in, dir_ + "/out.bin", {}).ok());
}

TEST_F(TokenizeFileTest, CancelLeavesNothing) {
  const std::string in = Write("in.txt", std::string(size_t{2} << 20, 'x'));
  absl::StatusOr<TokenizeFileResult> r = TokenizeFile(*MakeByteTokenizer(), in, dir_ + "/out.bin",
                                                      {}, [](int64_t, int64_t) { return false; });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(Files(), std::vector<std::string>{"in.txt"});
}

// A stand-in with a vocabulary larger than uint16 ids hold (ids = byte value × 300).
class WideTokenizer : public Tokenizer {
 public:
  absl::string_view kind() const override { return "wide"; }
  int32_t vocab_size() const override { return 256 * 300; }
  int32_t bos_id() const override { return -1; }
  int32_t eos_id() const override { return -1; }
  bool IsSpecial(int32_t) const override { return false; }
  void AppendTokenBytes(int32_t, DecodeContext*, std::string*) const override {}

 protected:
  absl::Status EncodeText(absl::string_view text, std::vector<int32_t>* ids) const override {
    for (char c : text) ids->push_back(static_cast<unsigned char>(c) * 300);
    return absl::OkStatus();
  }
};

TEST_F(TokenizeFileTest, LargeVocabularyNeedsUint32Ids) {
  const std::string in = Write("in.txt", "az");
  WideTokenizer wide;
  absl::StatusOr<TokenizeFileResult> r = TokenizeFile(wide, in, dir_ + "/out.bin", {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("76800 ids, more than uint16 token files"));
  TokenizeFileOptions options;
  options.id_width = TokenizeFileOptions::IdWidth::kUint32;
  r = TokenizeFile(wide, in, dir_ + "/out.bin", options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id_bytes, 4);
  EXPECT_EQ(ReadIds(dir_ + "/out.bin", 4), (std::vector<int32_t>{'a' * 300, 'z' * 300}));
}

TEST_F(TokenizeFileTest, RefusesAFifoAndBadOptions) {
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  absl::StatusOr<TokenizeFileResult> r =
      TokenizeFile(*MakeByteTokenizer(), fifo, dir_ + "/out.bin", {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("not a regular file"));
  TokenizeFileOptions options;
  options.max_document_bytes = 0;
  r = TokenizeFile(*MakeByteTokenizer(), Write("in.txt", "x"), dir_ + "/out.bin", options);
  EXPECT_THAT(r.status().message(), HasSubstr("max_document_bytes 0"));
}

}  // namespace
}  // namespace anerd::tokenizer
