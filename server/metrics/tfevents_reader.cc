#include "server/metrics/tfevents_reader.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "server/metrics/crc32c.h"

namespace anerd::metrics {
namespace {

uint64_t ReadLittleEndian(absl::string_view bytes, int width) {
  uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

}  // namespace

absl::StatusOr<TfRecords> ParseTfRecords(absl::string_view bytes, uint64_t max_record_bytes) {
  TfRecords out;
  uint64_t offset = 0;
  while (offset < bytes.size()) {
    const absl::string_view rest = bytes.substr(offset);
    if (rest.size() < 12) {
      out.torn_tail = true;
      break;
    }
    const uint64_t length = ReadLittleEndian(rest, 8);
    if (MaskCrc(Crc32c(rest.substr(0, 8))) != ReadLittleEndian(rest.substr(8), 4)) {
      return absl::DataLossError(absl::StrCat("record at byte ", offset, ": length CRC mismatch"));
    }
    if (length > max_record_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("record at byte ", offset, ": length ", length,
                                                     " over the bound ", max_record_bytes));
    }
    if (rest.size() - 12 < length + 4) {
      out.torn_tail = true;
      break;
    }
    const absl::string_view data = rest.substr(12, length);
    if (MaskCrc(Crc32c(data)) != ReadLittleEndian(rest.substr(12 + length), 4)) {
      return absl::DataLossError(absl::StrCat("record at byte ", offset, ": data CRC mismatch"));
    }
    out.records.emplace_back(data);
    offset += 16 + length;
  }
  return out;
}

absl::StatusOr<TfRecords> ReadTfRecordsFile(const std::string& path, uint64_t max_file_bytes,
                                            uint64_t max_record_bytes) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(path, ": ", ec.message()));
  if (size > max_file_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", size, " bytes, over the bound ", max_file_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return absl::InternalError(absl::StrCat("read ", path));
  absl::StatusOr<TfRecords> records = ParseTfRecords(bytes, max_record_bytes);
  if (!records.ok()) {
    return absl::Status(records.status().code(),
                        absl::StrCat(path, ": ", records.status().message()));
  }
  return records;
}

}  // namespace anerd::metrics
