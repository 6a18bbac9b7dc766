// Structured logs: one line per record, logfmt (default) or JSON, on stderr.
//
//   ts=2026-11-26T12:00:00.123Z level=info msg="domains created" lab=spk reconcile=9f2c41d07ab3e815
//   {"ts":"2026-11-26T12:00:00.123Z","level":"info","msg":"domains created","lab":"spk",...}
//
// Fields beyond ts, level and msg come from the LogFields alive on the
// logging thread (innermost last): the manager sets `lab` and `reconcile` for
// the whole of a reconcile, so every line a reconcile logs carries them.
// Threads a reconcile starts take them along with LogFields::Current().
// spdlog's default (synchronous) logger formats on the calling thread, which
// is what makes the thread's fields the right ones.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vmlab::controller {

enum class LogFormat { kLogfmt, kJson };

using LogField = std::pair<std::string, std::string>;

// Parses "logfmt" or "json".
[[nodiscard]] bool ParseLogFormat(std::string_view text, LogFormat& format);

// Makes spdlog's default logger write records in `format` to stderr, at
// `level` ("trace", "debug", "info", "warn", "error") and above.
void SetUpLogging(LogFormat format, const std::string& level);

// The formatter SetUpLogging installs, for a logger of one's own (tests).
[[nodiscard]] std::unique_ptr<spdlog::formatter> MakeLogFormatter(LogFormat format);

// Adds fields to every line this thread logs while the object lives.
class LogFields {
 public:
  explicit LogFields(std::vector<LogField> fields);
  ~LogFields();
  LogFields(const LogFields&) = delete;
  LogFields& operator=(const LogFields&) = delete;

  // The fields in effect on this thread, outermost first.
  [[nodiscard]] static std::vector<LogField> Current();

 private:
  std::size_t pushed_;
};

// A fresh reconcile id: 16 hex digits.
[[nodiscard]] std::string NewReconcileId();

// One record as it is written (without the newline); exposed for tests.
[[nodiscard]] std::string FormatLogLine(LogFormat format, std::string_view timestamp,
                                        std::string_view level, std::string_view message,
                                        const std::vector<LogField>& fields);

}  // namespace vmlab::controller
