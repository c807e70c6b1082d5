#include "common/npy.h"

#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"

namespace anerd {
namespace {

constexpr char kMagic[] =
    "\x93"
    "NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;

struct SupportedDescr {
  const char* descr;
  int64_t item_size;
};
constexpr SupportedDescr kSupported[] = {{"<f2", 2}, {"<f4", 4}, {"<i4", 4}, {"<i2", 2},
                                         {"|i1", 1}, {"|u1", 1}, {"|b1", 1}};

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("npy: ", what));
}

// The three keys of a .npy header dict.
struct HeaderFields {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
  bool has_descr = false, has_fortran_order = false, has_shape = false;
};

// Parses the Python dict literal of a .npy header: {'descr': <str>, 'fortran_order': <bool>,
// 'shape': <tuple of ints>} with any key order, whitespace and trailing commas. Input is bounded by
// the caller, so recursion-free scanning is linear.
class HeaderParser {
 public:
  explicit HeaderParser(absl::string_view text) : text_(text) {}
  absl::StatusOr<HeaderFields> Parse();

 private:
  void SkipSpace() {
    while (pos_ < text_.size() && absl::ascii_isspace(static_cast<unsigned char>(text_[pos_]))) {
      ++pos_;
    }
  }
  bool Consume(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  char Peek() {
    SkipSpace();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }
  absl::StatusOr<std::string> ParseString();
  absl::StatusOr<bool> ParseBool();
  absl::StatusOr<int64_t> ParseDim();
  absl::StatusOr<std::vector<int64_t>> ParseShape();
  absl::Status ParseEntry(HeaderFields* fields);

  absl::string_view text_;
  size_t pos_ = 0;
};

absl::StatusOr<std::string> HeaderParser::ParseString() {
  const char quote = Peek();
  if (quote != '\'' && quote != '"') return Invalid("header: expected a quoted string");
  const size_t end = text_.find(quote, pos_ + 1);
  if (end == absl::string_view::npos) return Invalid("header: unterminated string");
  std::string value(text_.substr(pos_ + 1, end - pos_ - 1));
  if (value.find('\\') != std::string::npos) return Invalid("header: escapes are not supported");
  pos_ = end + 1;
  return value;
}

absl::StatusOr<bool> HeaderParser::ParseBool() {
  SkipSpace();
  for (const auto& [word, value] : {std::pair<absl::string_view, bool>{"True", true},
                                    std::pair<absl::string_view, bool>{"False", false}}) {
    if (text_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      return value;
    }
  }
  return Invalid("header: 'fortran_order' must be True or False");
}

absl::StatusOr<int64_t> HeaderParser::ParseDim() {
  SkipSpace();
  if (pos_ < text_.size() && text_[pos_] == '-') return Invalid("shape has a negative dimension");
  if (pos_ >= text_.size() || !absl::ascii_isdigit(static_cast<unsigned char>(text_[pos_]))) {
    return Invalid("header: 'shape' must be a tuple of non-negative integers");
  }
  int64_t value = 0;
  for (; pos_ < text_.size() && absl::ascii_isdigit(static_cast<unsigned char>(text_[pos_]));
       ++pos_) {
    const int digit = text_[pos_] - '0';
    if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) {
      return Invalid("shape dimension does not fit in 64 bits");
    }
    value = value * 10 + digit;
  }
  if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2 long suffix
  return value;
}

// A Python tuple: "()", "(3,)", "(2, 3)", "(2, 3,)". "(3)" is an int in Python, not a tuple.
absl::StatusOr<std::vector<int64_t>> HeaderParser::ParseShape() {
  if (!Consume('(')) return Invalid("header: 'shape' must be a tuple");
  std::vector<int64_t> shape;
  bool saw_comma = false;
  while (!Consume(')')) {
    if (!shape.empty() && !saw_comma) return Invalid("header: expected ',' in 'shape'");
    if (static_cast<int>(shape.size()) >= kMaxNpyDims) {
      return Invalid(absl::StrCat("shape has more than ", kMaxNpyDims, " dimensions"));
    }
    ANERD_ASSIGN_OR_RETURN(int64_t dim, ParseDim());
    shape.push_back(dim);
    saw_comma = Consume(',');
  }
  if (shape.size() == 1 && !saw_comma) return Invalid("header: 'shape' (n) is not a tuple");
  return shape;
}

absl::Status HeaderParser::ParseEntry(HeaderFields* fields) {
  ANERD_ASSIGN_OR_RETURN(std::string key, ParseString());
  if (!Consume(':')) return Invalid(absl::StrCat("header: expected ':' after '", key, "'"));
  bool* seen = nullptr;
  if (key == "descr") {
    if (Peek() == '[') return Invalid("structured dtypes are not supported");
    ANERD_ASSIGN_OR_RETURN(fields->descr, ParseString());
    seen = &fields->has_descr;
  } else if (key == "fortran_order") {
    ANERD_ASSIGN_OR_RETURN(fields->fortran_order, ParseBool());
    seen = &fields->has_fortran_order;
  } else if (key == "shape") {
    ANERD_ASSIGN_OR_RETURN(fields->shape, ParseShape());
    seen = &fields->has_shape;
  } else {
    return Invalid(absl::StrCat("header: unexpected key '", key, "'"));
  }
  if (*seen) return Invalid(absl::StrCat("header: duplicate key '", key, "'"));
  *seen = true;
  return absl::OkStatus();
}

absl::StatusOr<HeaderFields> HeaderParser::Parse() {
  if (!Consume('{')) return Invalid("header is not a dict literal");
  HeaderFields fields;
  while (!Consume('}')) {
    ANERD_RETURN_IF_ERROR(ParseEntry(&fields));
    if (!Consume(',') && Peek() != '}') return Invalid("header: expected ',' or '}'");
  }
  SkipSpace();
  if (pos_ != text_.size()) return Invalid("header has trailing characters after the dict");
  if (!fields.has_descr || !fields.has_fortran_order || !fields.has_shape) {
    return Invalid("header must have the keys 'descr', 'fortran_order' and 'shape'");
  }
  return fields;
}

absl::Status CheckDescr(absl::string_view descr) {
  if (NpyItemSize(descr) > 0) return absl::OkStatus();
  if (absl::StrContains(descr, "O")) return Invalid("object arrays are not supported");
  if (!descr.empty() && descr[0] == '>') {
    return Invalid(absl::StrCat("big-endian dtype '", descr, "' is not supported"));
  }
  return Invalid(
      absl::StrCat("unsupported dtype '", descr, "' (supported: <f2 <f4 <i4 <i2 |i1 |u1 |b1)"));
}

// Data bytes implied by `shape` and `item_size`, or INVALID_ARGUMENT when above `max_bytes`.
// Never overflows: the element count is compared against max_bytes / item_size as it grows.
absl::StatusOr<int64_t> DataBytes(const std::vector<int64_t>& shape, int64_t item_size,
                                  int64_t max_bytes) {
  for (int64_t dim : shape) {
    if (dim < 0) return Invalid("shape has a negative dimension");
    if (dim == 0) return 0;
  }
  const int64_t limit = max_bytes / item_size;  // the most elements allowed
  int64_t count = 1;
  bool too_big = count > limit;
  for (size_t i = 0; i < shape.size() && !too_big; ++i) {
    too_big = count > limit / shape[i];
    count *= too_big ? 1 : shape[i];
  }
  if (too_big) {
    return Invalid(absl::StrCat("shape (", absl::StrJoin(shape, ", "), ") needs more than the ",
                                max_bytes, "-byte limit"));
  }
  return count * item_size;
}

// The header text (dict, padding, newline) for `array`, given the prefix length before it.
std::string HeaderText(const NpyArray& array, size_t prefix_len) {
  std::string shape = absl::StrJoin(array.shape, ", ");
  if (array.shape.size() == 1) shape += ",";
  std::string dict = absl::StrCat("{'descr': '", array.descr,
                                  "', 'fortran_order': False, 'shape': (", shape, "), }");
  const size_t unpadded = prefix_len + dict.size() + 1;
  dict.append((kAlign - unpadded % kAlign) % kAlign, ' ');
  dict.push_back('\n');
  return dict;
}

uint32_t LoadLittleEndian(absl::string_view bytes, size_t n) {
  uint32_t value = 0;
  for (size_t i = 0; i < n; ++i) value |= uint32_t{static_cast<uint8_t>(bytes[i])} << (8 * i);
  return value;
}

// Splits a file image into (header text, data) after checking the magic, version and length.
absl::Status SplitFile(absl::string_view bytes, absl::string_view* header,
                       absl::string_view* data) {
  if (bytes.size() < kMagicLen + 2 || bytes.substr(0, kMagicLen) != kMagic) {
    return Invalid("not a .npy file (bad magic)");
  }
  const int major = static_cast<uint8_t>(bytes[6]), minor = static_cast<uint8_t>(bytes[7]);
  if ((major != 1 && major != 2) || minor != 0) {
    return Invalid(
        absl::StrCat("unsupported format version ", major, ".", minor, " (supported: 1.0, 2.0)"));
  }
  const size_t len_bytes = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + len_bytes) return Invalid("file truncated in the header length");
  const uint32_t header_len = LoadLittleEndian(bytes.substr(8, len_bytes), len_bytes);
  if (header_len > kMaxNpyHeaderBytes) {
    return Invalid(
        absl::StrCat("header length ", header_len, " exceeds the limit of ", kMaxNpyHeaderBytes));
  }
  const size_t prefix = 8 + len_bytes;
  if (bytes.size() - prefix < header_len) return Invalid("file truncated in the header");
  *header = bytes.substr(prefix, header_len);
  *data = bytes.substr(prefix + header_len);
  return absl::OkStatus();
}

}  // namespace

int64_t NpyItemSize(absl::string_view descr) {
  for (const SupportedDescr& s : kSupported) {
    if (descr == s.descr) return s.item_size;
  }
  return 0;
}

absl::Status ValidateNpyArray(const NpyArray& array) {
  ANERD_RETURN_IF_ERROR(CheckDescr(array.descr));
  if (static_cast<int>(array.shape.size()) > kMaxNpyDims) {
    return Invalid(absl::StrCat("shape has more than ", kMaxNpyDims, " dimensions"));
  }
  ANERD_ASSIGN_OR_RETURN(int64_t expected, DataBytes(array.shape, NpyItemSize(array.descr),
                                                     std::numeric_limits<int64_t>::max()));
  if (static_cast<int64_t>(array.data.size()) != expected) {
    return Invalid(absl::StrCat("data is ", array.data.size(), " bytes but shape (",
                                absl::StrJoin(array.shape, ", "), ") of ", array.descr, " needs ",
                                expected));
  }
  return absl::OkStatus();
}

absl::StatusOr<NpyArray> ParseNpy(absl::string_view bytes, int64_t max_data_bytes) {
  absl::string_view header, data;
  ANERD_RETURN_IF_ERROR(SplitFile(bytes, &header, &data));
  ANERD_ASSIGN_OR_RETURN(HeaderFields fields, HeaderParser(header).Parse());
  if (fields.fortran_order) return Invalid("fortran_order True is not supported (C order only)");
  ANERD_RETURN_IF_ERROR(CheckDescr(fields.descr));
  ANERD_ASSIGN_OR_RETURN(int64_t expected,
                         DataBytes(fields.shape, NpyItemSize(fields.descr), max_data_bytes));
  if (static_cast<int64_t>(data.size()) != expected) {
    return Invalid(absl::StrCat("data section is ", data.size(), " bytes but shape (",
                                absl::StrJoin(fields.shape, ", "), ") of ", fields.descr, " needs ",
                                expected));
  }
  NpyArray array;
  array.descr = std::move(fields.descr);
  array.shape = std::move(fields.shape);
  array.data = std::string(data);
  return array;
}

std::string SerializeNpy(const NpyArray& array) {
  std::string header = HeaderText(array, kMagicLen + 4);
  const bool v2 = header.size() > std::numeric_limits<uint16_t>::max();
  if (v2) header = HeaderText(array, kMagicLen + 6);
  std::string out(kMagic, kMagicLen);
  out.push_back(static_cast<char>(v2 ? 2 : 1));
  out.push_back('\0');
  const size_t len_bytes = v2 ? 4 : 2;
  for (size_t i = 0; i < len_bytes; ++i) out.push_back(static_cast<char>(header.size() >> (8 * i)));
  out += header;
  out += array.data;
  return out;
}

absl::StatusOr<NpyArray> ReadNpyFile(const std::string& path, int64_t max_data_bytes) {
  const int64_t overhead = 12 + kMaxNpyHeaderBytes;
  const int64_t max_file = max_data_bytes > std::numeric_limits<int64_t>::max() - overhead
                               ? std::numeric_limits<int64_t>::max()
                               : max_data_bytes + overhead;
  absl::StatusOr<std::string> bytes = ReadFileToString(path, max_file);
  if (absl::IsResourceExhausted(bytes.status())) {
    return absl::InvalidArgumentError(absl::StrCat("npy: ", bytes.status().message()));
  }
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<NpyArray> array = ParseNpy(*bytes, max_data_bytes);
  if (!array.ok()) {
    return absl::Status(array.status().code(), absl::StrCat(path, ": ", array.status().message()));
  }
  return array;
}

absl::Status WriteNpyFile(const std::string& path, const NpyArray& array) {
  ANERD_RETURN_IF_ERROR(ValidateNpyArray(array));
  return WriteFileAtomically(path, SerializeNpy(array), 0644);
}

}  // namespace anerd
