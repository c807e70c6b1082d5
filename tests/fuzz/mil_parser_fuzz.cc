// Fuzzes the MIL front end: parse arbitrary text; when it parses, the printed form must re-parse
// to an equal program and print identically; verification must not crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/mil/parser.h"
#include "common/mil/printer.h"
#include "common/mil/verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace anerd::mil;
  ParseOptions options;
  options.max_text_bytes = 1 << 20;
  options.max_literal_elements = 1 << 16;
  std::string text(reinterpret_cast<const char*>(data), size);
  auto program = ParseProgram(text, options);
  if (!program.ok()) return 0;
  std::string printed = PrintProgram(*program);
  ParseOptions roomy = options;
  roomy.max_text_bytes = printed.size();
  auto reparsed = ParseProgram(printed, roomy);
  if (!reparsed.ok()) {
    std::fprintf(stderr, "printed program does not parse: %s\n%s\n",
                 std::string(reparsed.status().message()).c_str(), printed.c_str());
    std::abort();
  }
  if (!(*reparsed == *program) || PrintProgram(*reparsed) != printed) {
    std::fprintf(stderr, "round trip changed the program:\n%s\n", printed.c_str());
    std::abort();
  }
  (void)CheckProgram(*program, WeightFiles());
  return 0;
}
