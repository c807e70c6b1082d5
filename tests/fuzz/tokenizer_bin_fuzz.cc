// libFuzzer target for llama2.c tokenizer.bin parsing (common/tokenizer/llama2c_tokenizer.cc) and
// its encoder; see tokenizer_fuzz_common.h.
#include "tests/fuzz/tokenizer_fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  anerd::fuzz::FuzzTokenizerFile("llama2c", data, size);
  return 0;
}
