#include "common/logging.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "spdlog/sinks/rotating_file_sink.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace anerd {

absl::Status InitLogging(const LoggingOptions& options) {
  const spdlog::level::level_enum level = spdlog::level::from_str(options.level);
  if (level == spdlog::level::off && options.level != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log level '", options.level,
                     "' (want trace, debug, info, warn, error, critical or off)"));
  }
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  if (!options.file_path.empty()) {
    spdlog::sink_ptr file;
    // spdlog reports file errors by throwing; this is the one place we must contain that.
    try {
      file = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
          options.file_path, options.max_file_bytes, options.max_files);
    } catch (const spdlog::spdlog_ex& e) {
      return absl::UnavailableError(
          absl::StrCat("cannot open log file ", options.file_path, ": ", e.what()));
    }
    sinks.push_back(std::move(file));
  }
  auto logger = std::make_shared<spdlog::logger>(options.program, sinks.begin(), sinks.end());
  logger->set_level(level);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ %n[%P:%t] %v");
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  spdlog::flush_every(std::chrono::seconds(1));
  return absl::OkStatus();
}

void ShutdownLogging() {
  spdlog::default_logger()->flush();
  spdlog::shutdown();
}

}  // namespace anerd
