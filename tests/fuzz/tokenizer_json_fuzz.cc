// libFuzzer target for Hugging Face tokenizer.json parsing (common/tokenizer/hf_tokenizer.cc) and
// the encoder it builds (PCRE2 pre-tokenizer, byte-level BPE); see tokenizer_fuzz_common.h.
#include "tests/fuzz/tokenizer_fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  anerd::fuzz::FuzzTokenizerFile("hf", data, size);
  return 0;
}
