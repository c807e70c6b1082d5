#include "common/rpc/utf8_errors.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"
#include "spdlog/spdlog.h"

namespace anerd {
namespace {

thread_local std::optional<std::string> t_utf8_field;

// protobuf 3.x: "String field 'anerd.v1.X.y' contains invalid UTF-8 data when parsing a protocol
// buffer. ..." (the field name may also come without its message name).
void OnProtobufLog(google::protobuf::LogLevel level, const char* filename, int line,
                   const std::string& message) {
  static constexpr char kPrefix[] = "String field '";
  const size_t start = message.find(kPrefix);
  if (start != std::string::npos && absl::StrContains(message, "invalid UTF-8 data when parsing")) {
    const size_t begin = start + sizeof(kPrefix) - 1;
    const size_t end = message.find('\'', begin);
    if (end != std::string::npos) {
      t_utf8_field = message.substr(begin, end - begin);
      spdlog::debug("protobuf: {}", message);
      return;
    }
  }
  const std::string text = absl::StrCat("protobuf ", filename, ":", line, ": ", message);
  if (level >= google::protobuf::LOGLEVEL_ERROR) {
    spdlog::error("{}", text);
  } else if (level == google::protobuf::LOGLEVEL_WARNING) {
    spdlog::warn("{}", text);
  } else {
    spdlog::info("{}", text);
  }
}

}  // namespace

void CaptureUtf8ParseErrors() { google::protobuf::SetLogHandler(&OnProtobufLog); }

std::optional<std::string> TakeUtf8ParseError() {
  std::optional<std::string> field = std::move(t_utf8_field);
  t_utf8_field.reset();
  return field;
}

absl::Status InvalidUtf8Error(const std::string& field) {
  return absl::InvalidArgumentError(
      absl::StrCat("request field ", field,
                   " is not valid UTF-8 (protobuf string fields must hold UTF-8 text)"));
}

}  // namespace anerd
