// The sentencepiece kind against libsentencepiece's Python binding as the reference: the test
// trains two tiny models (BPE and unigram, byte fallback) with spm's Python trainer in a temp dir,
// has Python encode and decode a set of texts, and checks our ids and text against them.
// Skips when /usr/bin/python3 lacks sentencepiece (Debian: python3-sentencepiece).
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/utf8.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace anerd::tokenizer {
namespace {

constexpr char kScript[] = R"PY(
import json, random, sys
import sentencepiece as spm
d = sys.argv[1]
words = ["the", "cat", "don't", "can't", "it's", "café", "naïve", "über", "dog", "ran", "home",
         "quickly", "and", "then", "slept", "12", "345", "2026", "Once", "upon", "a", "time"]
r = random.Random(7)
with open(d + "/corpus.txt", "w") as f:
    for _ in range(400):
        f.write(" ".join(r.choice(words) for _ in range(8)) + "\n")
texts = ["the cat don't", "It's 2026, café naïve!", "  two  spaces ", "a\n\nblank line",
         "日本語 and 😀 emoji", "über12345", "Once upon a time", "x", "", "tab\tend \n"]
out = []
# The third model keeps every space (no extra-whitespace removal), so decoding must drop only
# the first piece's dummy-prefix space.
for name, kind, squeeze in [("bpe", "bpe", True), ("unigram", "unigram", True),
                            ("spaces", "bpe", False)]:
    model = d + "/" + name + ".model"
    spm.SentencePieceTrainer.train(input=d + "/corpus.txt", model_prefix=d + "/" + name,
                                   vocab_size=300, model_type=kind, byte_fallback=True,
                                   character_coverage=1.0, num_threads=1, minloglevel=2,
                                   remove_extra_whitespaces=squeeze)
    sp = spm.SentencePieceProcessor(model_file=model)
    for t in texts:
        ids = sp.encode(t)
        out.append({"model": model, "text": t, "ids": ids, "decoded": sp.decode(ids),
                    "bos": sp.bos_id(), "eos": sp.eos_id(), "vocab": sp.vocab_size(),
                    "decoded_bos": sp.decode([sp.bos_id()] + ids + [sp.eos_id()])})
with open(d + "/cases.json", "w") as f:
    json.dump(out, f)
)PY";

class SentencePieceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/usr/bin/python3", X_OK) != 0 ||
        std::system("/usr/bin/python3 -c 'import sentencepiece' >/dev/null 2>&1") != 0) {
      GTEST_SKIP()
          << "/usr/bin/python3 with sentencepiece (python3-sentencepiece) is not available";
    }
    char tmpl[] = "/tmp/anerd-spm-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/gen.py", kScript).ok());
    ASSERT_EQ(std::system(("/usr/bin/python3 " + dir_ + "/gen.py " + dir_).c_str()), 0);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::string dir_;
};

TEST_F(SentencePieceTest, MatchesTheReferenceEncodingAndDecoding) {
  absl::StatusOr<std::string> cases_text = ReadFileToString(dir_ + "/cases.json", 1 << 20);
  ASSERT_TRUE(cases_text.ok()) << cases_text.status();
  const nlohmann::json cases = nlohmann::json::parse(*cases_text, nullptr, false);
  ASSERT_TRUE(cases.is_array());
  ASSERT_EQ(cases.size(), 30u);
  for (const nlohmann::json& c : cases) {
    const std::string text = c["text"].get<std::string>();
    SCOPED_TRACE(c["model"].get<std::string>() + ": \"" + text + "\"");
    absl::StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizerFile("", c["model"]);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ((*t)->kind(), "sentencepiece");
    EXPECT_EQ((*t)->vocab_size(), c["vocab"].get<int>());
    EXPECT_EQ((*t)->bos_id(), c["bos"].get<int>());
    EXPECT_EQ((*t)->eos_id(), c["eos"].get<int>());
    const std::vector<int32_t> expected = c["ids"].get<std::vector<int32_t>>();
    absl::StatusOr<std::vector<int32_t>> ids = (*t)->Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, expected);
    EXPECT_EQ(*(*t)->Decode(expected), c["decoded"].get<std::string>());
    std::vector<int32_t> framed = *(*t)->Encode(text, {true, true});
    EXPECT_EQ(*(*t)->Decode(framed), c["decoded_bos"].get<std::string>());
    StreamDecoder stream(t->get());
    std::string joined;
    for (int32_t id : framed) {
      const std::string delta = *stream.Push(id);
      EXPECT_TRUE(CheckUtf8(delta, "delta").ok());
      joined += delta;
    }
    joined += stream.Finish();
    EXPECT_EQ(joined, c["decoded_bos"].get<std::string>());
  }
}

TEST_F(SentencePieceTest, RefusesMalformedModelsAndNonUtf8Text) {
  absl::StatusOr<std::string> model = ReadFileToString(dir_ + "/bpe.model", 1 << 20);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<std::unique_ptr<Tokenizer>> cut =
      LoadTokenizer("sentencepiece", model->substr(0, model->size() / 2), "half.model");
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(cut.status().message().find("half.model"), std::string::npos) << cut.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizer("", *model, "bpe.model");
  ASSERT_TRUE(t.ok());
  absl::Status s = (*t)->Encode("ok\xE6\x97").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("byte offset 2"), std::string::npos) << s;
}

}  // namespace
}  // namespace anerd::tokenizer
