// Helpers shared by the MIL tests: corpus files and synthesized weight files.
#ifndef ANERD_TESTS_MIL_MIL_TEST_UTIL_H_
#define ANERD_TESTS_MIL_MIL_TEST_UTIL_H_

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/mil/blob_writer.h"
#include "common/mil/ir.h"
#include "common/mil/weights.h"

namespace anerd::mil::testing {

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Sorted *.mil paths under tests/mil/<subdir>.
inline std::vector<std::string> CorpusFiles(const std::string& subdir) {
  std::vector<std::string> out;
  std::filesystem::path dir = std::filesystem::path(ANERD_SOURCE_DIR) / "tests/mil" / subdir;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".mil") out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The substrings given by leading `# expect: ...` lines.
inline std::vector<std::string> Expectations(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, "# expect: ")) break;
    out.emplace_back(line);
  }
  return out;
}

inline void CollectBlobs(const Argument& arg, std::vector<const Literal*>* out) {
  if (arg.kind == Argument::Kind::kTuple) {
    for (const Argument& e : arg.elements) CollectBlobs(e, out);
  } else if (arg.kind == Argument::Kind::kLiteral && arg.literal.blob) {
    out->push_back(&arg.literal);
  }
}

// One spec-correct single-entry weight file (BLOBFILE offset 64) for every BLOBFILE constant.
inline WeightFiles SynthesizeWeights(const Program& program) {
  std::vector<const Literal*> blobs;
  for (const Function& fn : program.functions) {
    for (const Operation& op : fn.ops) {
      for (const auto* list : {&op.inputs, &op.attributes}) {
        for (const NamedArgument& a : *list) CollectBlobs(a.value, &blobs);
      }
    }
  }
  WeightFiles weights;
  for (const Literal* lit : blobs) {
    size_t n = static_cast<size_t>(lit->type.NumElements());
    std::string bytes;
    if (lit->type.dtype == DType::kInt8) {
      bytes = BuildInt8Blob(std::vector<int8_t>(n, 3));
    } else if (lit->type.dtype == DType::kFp32) {
      bytes = BuildFp32Blob(std::vector<float>(n, 0.5f));
    } else {
      bytes = BuildFp16Blob(std::vector<float>(n, 0.5f));
    }
    (void)weights.Add(lit->blob->path, std::move(bytes));  // a repeated path keeps the first
  }
  return weights;
}

}  // namespace anerd::mil::testing

#endif  // ANERD_TESTS_MIL_MIL_TEST_UTIL_H_
