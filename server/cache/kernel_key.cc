#include "server/cache/kernel_key.h"

#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/hash.h"
#include "common/mil/printer.h"
#include "common/status_macros.h"

namespace anerd::cache {
namespace {

constexpr absl::string_view kNumericsPrefix = "numerics=";
constexpr absl::string_view kIgnoreAttnMask = "ignore_attn_mask";
constexpr absl::string_view kReferenceMode = "reference_mode";
constexpr absl::string_view kQosPrefix = "qos=";
constexpr unsigned int kMaxQos = 63;  // backend::CompileOptions::qos

std::string EncodeList(const std::vector<backend::TensorSignature>& sigs) {
  std::vector<std::string> parts;
  for (const backend::TensorSignature& s : sigs) {
    parts.push_back(absl::StrCat(s.name, ":", mil::DTypeName(s.type.dtype), "[",
                                 absl::StrJoin(s.type.shape, ","), "]"));
  }
  return absl::StrJoin(parts, ";");
}

absl::StatusOr<backend::TensorSignature> DecodeOne(absl::string_view part) {
  const auto malformed = [part](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("malformed stored signature '", part, "': ", why));
  };
  const size_t colon = part.find(':');
  if (colon == absl::string_view::npos) return malformed("no ':'");
  const absl::string_view type = part.substr(colon + 1);
  const size_t open = type.find('[');
  if (open == absl::string_view::npos || type.back() != ']') return malformed("no [dims]");
  backend::TensorSignature sig;
  sig.name = std::string(part.substr(0, colon));
  std::optional<mil::DType> dtype = mil::DTypeFromName(type.substr(0, open));
  if (!dtype) return malformed("unknown dtype");
  sig.type.dtype = *dtype;
  const absl::string_view dims = type.substr(open + 1, type.size() - open - 2);
  for (absl::string_view d : absl::StrSplit(dims, ',', absl::SkipEmpty())) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(d, &v)) return malformed("bad dimension");
    sig.type.shape.push_back(v);
  }
  return sig;
}

absl::StatusOr<std::vector<backend::TensorSignature>> DecodeList(absl::string_view text) {
  std::vector<backend::TensorSignature> out;
  for (absl::string_view part : absl::StrSplit(text, ';', absl::SkipEmpty())) {
    ANERD_ASSIGN_OR_RETURN(backend::TensorSignature sig, DecodeOne(part));
    out.push_back(std::move(sig));
  }
  return out;
}

}  // namespace

KernelKey KernelKey::Make(const mil::VerifiedProgram& program,
                          const backend::BackendDescription& backend,
                          const backend::CompileOptions& options,
                          const std::map<std::string, std::string>& known_weight_sha256) {
  KernelKey key;
  key.canonical_text = mil::PrintProgram(program.program());
  key.mil_sha = Sha256Hex(key.canonical_text);
  key.options = EncodeCompileOptions(options);
  for (const auto& [path, bytes] : program.weights().files()) {  // sorted by path
    auto known = known_weight_sha256.find(path);
    key.weights.emplace_back(
        path, known != known_weight_sha256.end() ? known->second : Sha256Hex(*bytes));
    key.weight_bytes += bytes->size();
  }
  Sha256 h;
  h.Update("anerd-kernel-v1\n");
  h.Update(key.canonical_text);
  for (const auto& [path, sha] : key.weights) h.Update(absl::StrCat("\nweight ", path, " ", sha));
  h.Update(
      absl::StrCat("\nbackend ", backend.name, " ", backend.version, "\noptions ", key.options));
  key.id = h.HexDigest();
  return key;
}

std::string EncodeCompileOptions(const backend::CompileOptions& options) {
  std::string out = absl::StrCat(kNumericsPrefix, backend::NumericsModeName(options.numerics));
  if (options.ignore_attn_mask) absl::StrAppend(&out, ",", kIgnoreAttnMask);
  if (options.reference_mode) absl::StrAppend(&out, ",", kReferenceMode);
  // Appended only when set, so kernels compiled without a QoS keep the ids they always had.
  if (options.qos.has_value()) absl::StrAppend(&out, ",", kQosPrefix, *options.qos);
  return out;
}

absl::StatusOr<backend::CompileOptions> DecodeCompileOptions(absl::string_view text) {
  const auto malformed = [text](absl::string_view why) {
    return absl::DataLossError(
        absl::StrCat("malformed stored compile options '", text, "': ", why));
  };
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  if (!absl::ConsumePrefix(&parts[0], kNumericsPrefix)) return malformed("no numerics=");
  backend::CompileOptions options;
  if (parts[0] == backend::NumericsModeName(backend::NumericsMode::kAne)) {
    options.numerics = backend::NumericsMode::kAne;
  } else if (parts[0] == backend::NumericsModeName(backend::NumericsMode::kFp32)) {
    options.numerics = backend::NumericsMode::kFp32;
  } else {
    return malformed("unknown numerics");
  }
  // The flags follow in the one order EncodeCompileOptions writes them, each at most once.
  size_t i = 1;
  if (i < parts.size() && parts[i] == kIgnoreAttnMask) {
    options.ignore_attn_mask = true;
    ++i;
  }
  if (i < parts.size() && parts[i] == kReferenceMode) {
    options.reference_mode = true;
    ++i;
  }
  if (i < parts.size() && absl::ConsumePrefix(&parts[i], kQosPrefix)) {
    unsigned int qos = 0;
    // Only the plain decimal EncodeCompileOptions writes: no sign, no leading zero, <= kMaxQos.
    if (!absl::SimpleAtoi(parts[i], &qos) || qos > kMaxQos || absl::StrCat(qos) != parts[i]) {
      return malformed(absl::StrCat("bad qos '", parts[i], "'"));
    }
    options.qos = qos;
    ++i;
  }
  if (i != parts.size()) return malformed(absl::StrCat("unexpected '", parts[i], "'"));
  return options;
}

std::string EncodeSignature(const KernelSignature& signature) {
  return absl::StrCat(EncodeList(signature.inputs), "->", EncodeList(signature.outputs));
}

absl::StatusOr<KernelSignature> DecodeSignature(absl::string_view text) {
  const size_t arrow = text.find("->");
  if (arrow == absl::string_view::npos) {
    return absl::DataLossError(absl::StrCat("stored signature '", text, "' has no '->'"));
  }
  KernelSignature out;
  ANERD_ASSIGN_OR_RETURN(out.inputs, DecodeList(text.substr(0, arrow)));
  ANERD_ASSIGN_OR_RETURN(out.outputs, DecodeList(text.substr(arrow + 2)));
  return out;
}

}  // namespace anerd::cache
