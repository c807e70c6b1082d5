// Malformed tokenizer files: each is INVALID_ARGUMENT naming the source and the field or byte
// offset, with sizes bounded before anything is allocated.
#include <cstring>
#include <string>

#include "common/atomic_file.h"
#include "common/tokenizer/kinds.h"
#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd::tokenizer {
namespace {

using ::testing::HasSubstr;

std::string Int32(int32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string Float(float v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string Entry(float score, const std::string& piece) {
  return Float(score) + Int32(static_cast<int32_t>(piece.size())) + piece;
}
// A valid three-token file: <unk>, bos, eos.
std::string MinimalBin() {
  return Int32(7) + Entry(0, "<unk>") + Entry(0, "\n<s>\n") + Entry(0, "\n</s>\n");
}

void ExpectInvalid(absl::string_view kind, const std::string& bytes, absl::string_view what) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizer(kind, bytes, "tok.file");
  ASSERT_FALSE(t.ok()) << "accepted; expected an error with: " << what;
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
  EXPECT_THAT(t.status().message(), HasSubstr("tok.file")) << t.status();
  EXPECT_THAT(t.status().message(), HasSubstr(what)) << t.status();
}

TEST(Llama2cBadInput, NamesTheFieldAndOffset) {
  ASSERT_TRUE(LoadTokenizer("llama2c", MinimalBin(), "tok.file").ok());
  ExpectInvalid("llama2c", "", "max_token_length at byte offset 0: truncated");
  ExpectInvalid("llama2c", Int32(0) + MinimalBin().substr(4), "max_token_length");
  ExpectInvalid("llama2c", Int32(1 << 30) + MinimalBin().substr(4), "outside 1 .. 1024");
  // Cut inside token 2's bytes.
  const std::string bin = MinimalBin();
  ExpectInvalid("llama2c", bin.substr(0, bin.size() - 2), "token 2 bytes at byte offset");
  // Token 1's length larger than max_token_length, or negative (no allocation of it).
  ExpectInvalid("llama2c", Int32(7) + Entry(0, "<unk>") + Float(0) + Int32(1 << 30),
                "token 1 length at byte offset");
  ExpectInvalid("llama2c", Int32(7) + Entry(0, "<unk>") + Float(0) + Int32(-5), "-5 is outside");
  float nan;
  const uint32_t nan_bits = 0x7FC00000u;
  std::memcpy(&nan, &nan_bits, 4);
  ExpectInvalid("llama2c", Int32(7) + Entry(nan, "x") + bin.substr(4), "token 0 score");
  ExpectInvalid("llama2c", Int32(7) + Entry(0, "<unk>"), "at least <unk>, bos, eos");
}

TEST(Llama2cBadInput, ByteFallbackOutsideTheVocabularyIsAnError) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizer("llama2c", MinimalBin(), "x");
  ASSERT_TRUE(t.ok());
  absl::Status s = (*t)->Encode("ab").status();  // no " " piece and no byte pieces
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("byte-fallback id"));
}

std::string HfWith(const std::string& model, const std::string& extra = "") {
  return R"({"pre_tokenizer": {"type": "ByteLevel", "use_regex": false}, )" + extra +
         R"("model": )" + model + "}";
}

TEST(HfBadInput, NamesTheField) {
  const std::string ok_model =
      R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})";
  ASSERT_TRUE(LoadTokenizer("hf", HfWith(ok_model), "tok.file").ok());
  ExpectInvalid("hf", "{\"model\": ", "is not valid JSON");
  ExpectInvalid("hf", "[1, 2]", "is not a JSON object");
  ExpectInvalid("hf", std::string(100, '[') + std::string(100, ']'), "nests deeper than 64");
  ExpectInvalid("hf", R"({"pre_tokenizer": {"type": "ByteLevel"}})", "model is missing");
  ExpectInvalid("hf", HfWith(R"({"type": "WordPiece", "vocab": {}})"), "model.type");
  ExpectInvalid("hf", HfWith(R"({"vocab": {"a": "zero"}})"),
                "model.vocab[\"a\"] is not an integer");
  // A huge id is refused before the id table grows to it.
  ExpectInvalid("hf", HfWith(R"({"vocab": {"a": 2000000000}})"), "outside 0 .. 1048575");
  ExpectInvalid("hf", HfWith(R"({"vocab": {"a": 0, "b": 0}})"), "reuses id 0");
  ExpectInvalid("hf", HfWith(R"({"vocab": {"a": 0, "b": 1}, "merges": ["a b"]})"),
                "model.merges[0] names a token not in model.vocab");
  ExpectInvalid("hf", HfWith(R"({"vocab": {"a": 0}, "merges": ["a"]})"), "model.merges[0]");
  ExpectInvalid("hf", HfWith(R"({"vocab": {"a": 0}, "continuing_subword_prefix": "##"})"),
                "model.continuing_subword_prefix");
  ExpectInvalid("hf", HfWith(ok_model, R"("normalizer": {"type": "Lowercase"}, )"), "normalizer");
  ExpectInvalid("hf", HfWith(ok_model, R"("added_tokens": [{"id": 5}], )"),
                "added_tokens[0].content");
  ExpectInvalid(
      "hf",
      R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"},
                   "model": {"vocab": {}}})",
      "pre_tokenizer.pattern: the pattern does not compile at offset");
  ExpectInvalid("hf", R"({"pre_tokenizer": {"type": "Whitespace"}, "model": {"vocab": {}}})",
                "pre_tokenizer.type \"Whitespace\" is not supported");
  ExpectInvalid(
      "hf",
      R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Isolated"},
                   "model": {"vocab": {}}})",
      "has no ByteLevel step");
  ExpectInvalid("hf",
                R"({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "ByteLevel"},
                   {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Removed"}]},
                   "model": {"vocab": {}}})",
                "pre_tokenizer.pretokenizers[1].behavior");
}

TEST(HfBadInput, ByteWithoutATokenIsAnErrorNamingIt) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t =
      LoadTokenizer("hf", HfWith(R"({"vocab": {"a": 0}})"), "x");
  ASSERT_TRUE(t.ok()) << t.status();
  absl::Status s = (*t)->Encode("ab").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("byte 0x62 has no token"));
}

TEST(HfBadInput, EmptyMatchesAndCatastrophicPatternsTerminate) {
  // A pattern that matches the empty string everywhere splits nothing and must not loop.
  const std::string json =
      R"({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
          {"type": "Split", "pattern": {"Regex": "x*"}, "behavior": "Isolated"},
          {"type": "ByteLevel", "use_regex": false}]},
         "model": {"vocab": {"a": 0, "x": 1}}})";
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizer("hf", json, "x");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*(*t)->Encode("aaxxa"), (std::vector<int32_t>{0, 0, 1, 1, 0}));
  // Exponential backtracking hits PCRE2's match limit and is reported with the offset.
  const std::string evil =
      R"({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
          {"type": "Split", "pattern": {"Regex": "(a|aa)+$"}, "behavior": "Isolated"},
          {"type": "ByteLevel", "use_regex": false}]},
         "model": {"vocab": {"a": 0}}})";
  t = LoadTokenizer("hf", evil, "x");
  ASSERT_TRUE(t.ok()) << t.status();
  absl::Status s = (*t)->Encode(std::string(40, 'a') + "b").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("pre-tokenizer pattern fails at byte offset"));
}

TEST(LoadTokenizerBadInput, BoundsTheFileSizeFirst) {
  const std::string big(static_cast<size_t>(kMaxTokenizerFileBytes) + 1, ' ');
  ExpectInvalid("hf", big, "the limit is");
  ExpectInvalid("byte", "x", "takes no file");
}

}  // namespace
}  // namespace anerd::tokenizer
