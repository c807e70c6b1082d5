#include "server/training/validation_split.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/training/data.h"

namespace anerd::training {

absl::StatusOr<int64_t> TokenCountOf(const std::string& path, const std::string& format) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot read data file ", path));
  }
  ANERD_ASSIGN_OR_RETURN(const DataFormat f, ResolveDataFormat(path, format));
  const int64_t width = f == DataFormat::kTokens32 ? 4 : f == DataFormat::kTokens16 ? 2 : 1;
  return static_cast<int64_t>(st.st_size) / width;
}

absl::Status ResolveValidationSplit(TrainSpec* spec) {
  spec->train_tokens = spec->val_begin = spec->val_end = 0;
  const int64_t window = int64_t{spec->model.seq} + 1;
  if (spec->val_fraction != 0) {
    if (!(spec->val_fraction > 0 && spec->val_fraction < 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("val_fraction: ", spec->val_fraction, " must lie in (0, 1)"));
    }
    ANERD_ASSIGN_OR_RETURN(const int64_t n, TokenCountOf(spec->data_path, spec->data_format));
    const auto held = static_cast<int64_t>(std::floor(static_cast<double>(n) * spec->val_fraction));
    if (held < window || n - held < window) {
      return absl::InvalidArgumentError(absl::StrCat(
          "val_fraction: ", spec->val_fraction, " of ", n, " tokens leaves ", n - held,
          " to train on and ", held, " held out; each part needs at least seq + 1 = ", window));
    }
    spec->train_tokens = n - held;
    spec->val_begin = n - held;
    spec->val_end = n;
    return absl::OkStatus();
  }
  if (spec->val_data_path.empty()) return absl::OkStatus();
  ANERD_ASSIGN_OR_RETURN(const int64_t m, TokenCountOf(spec->val_data_path, spec->val_data_format));
  if (m < window) {
    return absl::InvalidArgumentError(
        absl::StrCat("val_data: ", m, " tokens; held-out data needs at least seq + 1 = ", window));
  }
  spec->val_begin = 0;
  spec->val_end = m;
  return absl::OkStatus();
}

}  // namespace anerd::training
