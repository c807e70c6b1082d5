// Tokenizations of the committed hand-made fixtures (testdata/make_fixtures.py) against ids
// worked out from each format's definition, round trips, and streaming decode.
#include "common/tokenizer/tokenizer.h"

#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/tokenizer/kinds.h"
#include "common/tokenizer/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::string Fixture(const std::string& name) {
  return std::string(ANERD_SOURCE_DIR) + "/tests/tokenizer/testdata/" + name;
}

std::unique_ptr<Tokenizer> Load(const std::string& name) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizerFile("", Fixture(name));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

std::vector<int32_t> Ids(const Tokenizer& t, const std::string& text, bool bos = false) {
  absl::StatusOr<std::vector<int32_t>> ids = t.Encode(text, {bos, false});
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{-1};
}

std::string Text(const Tokenizer& t, const std::vector<int32_t>& ids) {
  absl::StatusOr<std::string> text = t.Decode(ids);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "<error>";
}

// Streams `ids`; every delta must be whole UTF-8 and the deltas must add up to Decode(ids).
void ExpectStreamMatchesDecode(const Tokenizer& t, const std::vector<int32_t>& ids) {
  StreamDecoder stream(&t);
  std::string joined;
  for (int32_t id : ids) {
    absl::StatusOr<std::string> delta = stream.Push(id);
    ASSERT_TRUE(delta.ok()) << delta.status();
    EXPECT_TRUE(CheckUtf8(*delta, "delta").ok()) << "id " << id;
    joined += *delta;
  }
  joined += stream.Finish();
  EXPECT_EQ(joined, Text(t, ids));
}

const std::vector<std::string>& RoundTripTexts() {
  static const auto* texts = new std::vector<std::string>{
      "don't",          "the don't", "é12\n\nx", "a\n\nb",    "aü 日本 😀",
      "  two  spaces ", "\n",        "It's 42.", "tab\there", ""};
  return *texts;
}

TEST(ByteTokenizer, IdsAreByteValuesForAnyBytes) {
  std::unique_ptr<Tokenizer> t = MakeByteTokenizer();
  EXPECT_EQ(t->vocab_size(), 256);
  EXPECT_EQ(t->bos_id(), -1);
  EXPECT_THAT(Ids(*t, "hé"), ElementsAre('h', 0xC3, 0xA9));
  EXPECT_THAT(Ids(*t, std::string("\xFF\x00", 2)), ElementsAre(0xFF, 0));  // any bytes
  EXPECT_EQ(t->Encode("x", {true, false}).status().code(),
            absl::StatusCode::kFailedPrecondition);  // no bos
  EXPECT_EQ(Text(*t, {0xFF, 'a'}), std::string(kReplacementChar) + "a");
  for (const std::string& s : RoundTripTexts()) EXPECT_EQ(Text(*t, Ids(*t, s)), s);
}

TEST(Llama2cTokenizer, EncodesAsRunC) {
  std::unique_ptr<Tokenizer> t = Load("tiny_tokenizer.bin");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->kind(), "llama2c");
  EXPECT_EQ(t->vocab_size(), 282);
  // " "+d,o,n,',t: "do" (−1) first, then " do" (−2), "n'" (−6), "n't" (−4).
  EXPECT_THAT(Ids(*t, "don't"), ElementsAre(273, 275));
  EXPECT_THAT(Ids(*t, "don't", /*bos=*/true), ElementsAre(1, 273, 275));
  EXPECT_THAT(Ids(*t, "é"), ElementsAre(279));                      // multibyte code point in vocab
  EXPECT_THAT(Ids(*t, "aü"), ElementsAre(259, 260, 198, 191));      // ü = C3 BC: byte + 3
  EXPECT_THAT(Ids(*t, "12"), ElementsAre(259, 277));                // digits merge by score
  EXPECT_THAT(Ids(*t, "a\n\nb"), ElementsAre(259, 260, 278, 261));  // blank line
  EXPECT_THAT(Ids(*t, "aba"), ElementsAre(259, 280, 260));          // equal scores: leftmost pair
  EXPECT_THAT(Ids(*t, "😀"), ElementsAre(259, 243, 162, 155, 131));
  EXPECT_THAT(Ids(*t, ""), ElementsAre());  // no dummy prefix for empty text
}

TEST(Llama2cTokenizer, DecodesAsRunC) {
  std::unique_ptr<Tokenizer> t = Load("tiny_tokenizer.bin");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(Text(*t, {1, 273, 275, 2}), "don't");  // bos/eos render nothing; space after bos
  EXPECT_EQ(Text(*t, {273, 273}), "do do");        // only the first piece loses its space
  EXPECT_EQ(Text(*t, {260, 3 + 'x'}), "ax");       // <0x78> is the byte 'x'
  for (const std::string& s : RoundTripTexts()) {
    EXPECT_EQ(Text(*t, Ids(*t, s)), s);
    EXPECT_EQ(Text(*t, Ids(*t, s, /*bos=*/true)), s);
  }
}

TEST(HfTokenizer, EncodesByteLevelBpeWithQwenPattern) {
  std::unique_ptr<Tokenizer> t = Load("tiny_tokenizer.json");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->kind(), "hf");
  EXPECT_EQ(t->vocab_size(), 270);
  EXPECT_EQ(t->eos_id(), 265);
  EXPECT_EQ(t->bos_id(), -1);
  // Pre-tokens "the" " don" "'t" (contraction); "h e", then "d o", "do n", "' t".
  EXPECT_THAT(Ids(*t, "the don't"), ElementsAre(116, 257, 32, 261, 260));
  // "Ġ t" (rank 0) before "h e" (rank 1), then "Ġt he".
  EXPECT_THAT(Ids(*t, " the"), ElementsAre(258));
  // "é" = Ã© merged; \p{N} splits digits one by one so "1 2" never merges; "\n\n" one pre-token.
  EXPECT_THAT(Ids(*t, "é12\n\nx"), ElementsAre(264, 49, 50, 262, 120));
  EXPECT_THAT(Ids(*t, "日"), ElementsAre(0xE6, 0x97, 0xA5));
  // Overlapping pairs: "y z" (rank 9) merges before "x y" (rank 10).
  EXPECT_THAT(Ids(*t, "xyz"), ElementsAre('x', 268));
  // Added tokens match before splitting, longest first.
  EXPECT_THAT(Ids(*t, "hi<|endoftext|><|im_start|>x[X]"),
              ElementsAre('h', 'i', 265, 266, 'x', 267));
}

TEST(HfTokenizer, LongRunsOfOneClassEncode) {
  // A pre-token can be a whole file's worth of spaces or letters: PCRE2 must not run out of
  // stack and the merge loop must stay fast (heap merge, not rescans).
  std::unique_ptr<Tokenizer> t = Load("tiny_tokenizer.json");
  ASSERT_NE(t, nullptr);
  for (const std::string& run : {std::string(200000, ' ') + "x", std::string(200000, 'y'),
                                 std::string(100000, '\n') + "\t "}) {
    absl::StatusOr<std::vector<int32_t>> ids = t->Encode(run);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(Text(*t, *ids), run);
  }
}

TEST(HfTokenizer, DecodeSkipsSpecialTokensAndRoundTrips) {
  std::unique_ptr<Tokenizer> t = Load("tiny_tokenizer.json");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(Text(*t, {'h', 'i', 265, 266, 'x', 267}), "hix[X]");
  for (const std::string& s : RoundTripTexts()) EXPECT_EQ(Text(*t, Ids(*t, s)), s);
}

TEST(HfTokenizer, Gpt2StyleByteLevelRegexAndBosFromTemplate) {
  // A minimal GPT-2 style file: ByteLevel's own pattern, bos from TemplateProcessing.
  std::string vocab;
  for (int b = 'a'; b <= 'z'; ++b)
    vocab += "\"" + std::string(1, char(b)) + "\": " + std::to_string(b) + ", ";
  vocab += "\"\\u0120\": 32, \"ab\": 300";
  const std::string json = R"({"added_tokens": [{"id": 301, "content": "<s>", "special": true}],
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true, "use_regex": true},
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A"}}]},
    "model": {"type": "BPE", "vocab": {)" +
                           vocab + R"(}, "merges": [["a", "b"]]}})";
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizer("hf", json, "gpt2.json");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->bos_id(), 301);
  // add_prefix_space: " ab" → Ġ a b → Ġ + "ab"; " c" → Ġ c.
  EXPECT_THAT(Ids(**t, "ab c", /*bos=*/true), ElementsAre(301, 32, 300, 32, 'c'));
  EXPECT_EQ(Text(**t, {301, 32, 300, 32, 'c'}), " ab c");
}

// The NFC normalizer composes before byte-level BPE, as the tokenizers library does: "e" +
// U+0301 (combining acute) becomes U+00E9, whose bytes C3 A9 are the byte-level characters
// "Ã" "©", merged into id 3. Without a normalizer the decomposed text stays e (0), then CC 81:
// "Ì" (4) and GPT-2's character for byte 0x81, U+0123 "ģ" (5).
std::string NfcJson(const std::string& normalizer) {
  return R"({"pre_tokenizer": {"type": "ByteLevel", "use_regex": false}, "normalizer": )" +
         normalizer + R"(, "model": {"type": "BPE", "vocab": {"e": 0, "\u00c3": 1, "\u00a9": 2,
         "\u00c3\u00a9": 3, "\u00cc": 4, "\u0123": 5}, "merges": ["\u00c3 \u00a9"]}})";
}

TEST(HfTokenizer, NfcNormalizerComposesBeforeBpe) {
  const std::string decomposed =
      "e\xCC\x81"
      "e";  // e U+0301 e
  const std::string composed =
      "\xC3\xA9"
      "e";  // U+00E9 e
  for (const std::string normalizer :
       {R"({"type": "NFC"})", R"({"type": "Sequence", "normalizers": [{"type": "NFC"}]})"}) {
    SCOPED_TRACE(normalizer);
    absl::StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizer("hf", NfcJson(normalizer), "n");
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_THAT(Ids(**t, decomposed), ElementsAre(3, 0));
    EXPECT_THAT(Ids(**t, composed), ElementsAre(3, 0));
    EXPECT_EQ(Text(**t, {3, 0}), composed);
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> plain = LoadTokenizer("hf", NfcJson("null"), "n");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_THAT(Ids(**plain, decomposed), ElementsAre(0, 4, 5, 0));
}

TEST(HfTokenizer, NormalizersOtherThanNfcAreRefusedNamingTheField) {
  struct Case {
    const char* normalizer;
    const char* field;
  };
  for (const Case& c : {
           Case{R"({"type": "NFKC"})", "normalizer \"NFKC\" is not implemented"},
           Case{R"({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]})",
                "normalizer.normalizers[1] \"Lowercase\" is not implemented"},
           Case{R"({"type": "Sequence"})", "normalizer.normalizers is missing"},
           Case{R"({"kind": "NFC"})", "normalizer without a type"},
       }) {
    absl::Status s = LoadTokenizer("hf", NfcJson(c.normalizer), "n.json").status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.normalizer;
    EXPECT_THAT(s.message(), HasSubstr("n.json")) << s;
    EXPECT_THAT(s.message(), HasSubstr(c.field)) << s;
  }
}

TEST(StreamDecoder, DeltasAreWholeUtf8AndAddUpToDecode) {
  for (const std::string& name : {"tiny_tokenizer.bin", "tiny_tokenizer.json"}) {
    SCOPED_TRACE(name);
    std::unique_ptr<Tokenizer> t = Load(name);
    ASSERT_NE(t, nullptr);
    for (const std::string& s : RoundTripTexts()) {
      ExpectStreamMatchesDecode(*t, Ids(*t, s, /*bos=*/t->bos_id() >= 0));
    }
  }
  std::unique_ptr<Tokenizer> bytes = MakeByteTokenizer();
  ExpectStreamMatchesDecode(*bytes, {0xF0, 0x9F, 0x98, 0x80, 0xE6, 'x', 0xC3});
}

TEST(StreamDecoder, HoldsASplitCharacterUntilItIsWhole) {
  std::unique_ptr<Tokenizer> t = Load("tiny_tokenizer.bin");
  ASSERT_NE(t, nullptr);
  StreamDecoder stream(t.get());
  std::vector<std::string> deltas;
  for (int32_t id : {1, 259, 243, 162, 155, 131}) deltas.push_back(*stream.Push(id));
  EXPECT_THAT(deltas, ElementsAre("", "", "", "", "", "😀"));
  EXPECT_EQ(*stream.Push(243), "");  // a cut-off character at the end becomes U+FFFD
  EXPECT_EQ(stream.Finish(), kReplacementChar);
  EXPECT_EQ(stream.Push(999).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Utf8Assembler, SameTextHoweverTheBytesAreSplit) {
  const std::string bytes = "a\xF0\x9F\x98\x80\xE6\x97\xFF\xED\xA0\x80z\xC3";
  const std::string whole = SanitizeUtf8(bytes);
  EXPECT_TRUE(CheckUtf8(whole, "x").ok());
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    Utf8Assembler a;
    std::string out;
    a.Push(bytes.substr(0, cut), &out);
    a.Push(bytes.substr(cut), &out);
    a.Finish(&out);
    EXPECT_EQ(out, whole) << "cut " << cut;
  }
}

TEST(LoadTokenizer, DetectsKindsAndRefusesUnknownOnes) {
  absl::StatusOr<std::string> bin = ReadFileToString(Fixture("tiny_tokenizer.bin"), 1 << 20);
  ASSERT_TRUE(bin.ok());
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizer("", *bin, "no-extension");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->kind(), "llama2c");
  EXPECT_EQ((*LoadTokenizer("byte", "", "x"))->kind(), "byte");
  absl::Status s = LoadTokenizer("wordpiece", "", "x").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("unknown tokenizer kind \"wordpiece\""));
  s = LoadTokenizer("", "\x01\x02", "mystery").status();
  EXPECT_THAT(s.message(), HasSubstr("cannot tell the tokenizer kind of mystery"));
}

TEST(Tokenizer, RefusesTextThatIsNotUtf8NamingTheOffset) {
  for (const std::string& name : {"tiny_tokenizer.bin", "tiny_tokenizer.json"}) {
    std::unique_ptr<Tokenizer> t = Load(name);
    ASSERT_NE(t, nullptr);
    absl::Status s = t->Encode("abc\xC3(").status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(s.message(), HasSubstr("invalid UTF-8 at byte offset 3")) << name;
    s = t->Decode({5, -1}).status();
    EXPECT_THAT(s.message(), HasSubstr("token id -1 at index 1 is outside the vocabulary"));
  }
}

}  // namespace
}  // namespace anerd::tokenizer
