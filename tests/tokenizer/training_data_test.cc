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

TEST(TrainingData, ByteTokenizerIdsEqualTheLoadersTextIdsAndItsTokenFilesLoad) {
  char tmpl[] = "/tmp/anerd-tokdata-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string text = "Once upon a time, é日😀 don't\n\nThe end.\n";
  ASSERT_TRUE(WriteFileAtomically(dir + "/story.txt", text).ok());
  absl::StatusOr<std::unique_ptr<training::TokenData>> loaded =
      training::TokenData::Open(dir + "/story.txt", "text", 256, 4);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const std::vector<int32_t> from_loader((*loaded)->tokens(),
                                         (*loaded)->tokens() + (*loaded)->size());
  std::unique_ptr<Tokenizer> bytes = MakeByteTokenizer();
  EXPECT_EQ(*bytes->Encode(text), from_loader);

  ASSERT_TRUE(TokenizeFile(*bytes, dir + "/story.txt", dir + "/story.bin", {}).ok());
  absl::StatusOr<std::unique_ptr<training::TokenData>> tokens =
      training::TokenData::Open(dir + "/story.bin", "tokens", 256, 4);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(std::vector<int32_t>((*tokens)->tokens(), (*tokens)->tokens() + (*tokens)->size()),
            from_loader);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace anerd::tokenizer
