#include "controller/logging.h"

#include <fmt/format.h>
#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <mutex>
#include <random>

namespace vmlab::controller {
namespace {

thread_local std::vector<LogField> thread_fields;

// Length of the valid UTF-8 sequence at `text[i]`, or 0 if it is not one.
std::size_t Utf8Length(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  std::size_t length = 0;
  std::uint32_t min = 0;
  if (lead < 0x80) return 1;
  if ((lead & 0xe0) == 0xc0)
    length = 2, min = 0x80;
  else if ((lead & 0xf0) == 0xe0)
    length = 3, min = 0x800;
  else if ((lead & 0xf8) == 0xf0)
    length = 4, min = 0x10000;
  else
    return 0;
  if (i + length > text.size()) return 0;
  std::uint32_t code = lead & (0x7f >> length);
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3f);
  }
  if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;
  return length;
}

// Appends `text` escaped for a double-quoted logfmt or JSON string: quotes,
// backslashes and control characters escaped, invalid UTF-8 replaced by U+FFFD.
void AppendEscaped(std::string& out, std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        } else if (const std::size_t n = Utf8Length(text, i); n == 0) {
          out += "\\ufffd";
        } else {
          out.append(text.substr(i, n));
          i += n;
          continue;
        }
    }
    ++i;
  }
}

bool NeedsQuotes(std::string_view value) {
  if (value.empty()) return true;
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u == 0x7f || u >= 0x80 || c == '=' || c == '"' || c == '\\') return true;
  }
  return false;
}

// Keys are identifiers in both formats: anything else becomes '_'.
std::string Key(std::string_view key) {
  std::string out(key);
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) c = '_';
  }
  return out.empty() ? "_" : out;
}

std::string_view LevelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

std::string Timestamp(std::chrono::system_clock::time_point time) {
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(millis / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:03}Z", buffer, millis % 1000);
}

class StructuredFormatter final : public spdlog::formatter {
 public:
  explicit StructuredFormatter(LogFormat format) : format_(format) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string line =
        FormatLogLine(format_, Timestamp(msg.time), LevelName(msg.level),
                      std::string_view(msg.payload.data(), msg.payload.size()), thread_fields);
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }

  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<StructuredFormatter>(format_);
  }

 private:
  LogFormat format_;
};

}  // namespace

bool ParseLogFormat(std::string_view text, LogFormat& format) {
  if (text == "logfmt") {
    format = LogFormat::kLogfmt;
    return true;
  }
  if (text == "json") {
    format = LogFormat::kJson;
    return true;
  }
  return false;
}

std::string FormatLogLine(LogFormat format, std::string_view timestamp, std::string_view level,
                          std::string_view message, const std::vector<LogField>& fields) {
  std::string out;
  out.reserve(64 + message.size());
  if (format == LogFormat::kJson) {
    out += "{\"ts\":\"";
    AppendEscaped(out, timestamp);
    out += "\",\"level\":\"";
    AppendEscaped(out, level);
    out += "\",\"msg\":\"";
    AppendEscaped(out, message);
    out += '"';
    for (const auto& [key, value] : fields) {
      out += ",\"";
      out += Key(key);
      out += "\":\"";
      AppendEscaped(out, value);
      out += '"';
    }
    out += '}';
    return out;
  }
  const auto append_pair = [&out](std::string_view key, std::string_view value) {
    if (!out.empty()) out += ' ';
    out += Key(key);
    out += '=';
    if (NeedsQuotes(value)) {
      out += '"';
      AppendEscaped(out, value);
      out += '"';
    } else {
      out.append(value);
    }
  };
  append_pair("ts", timestamp);
  append_pair("level", level);
  append_pair("msg", message);
  for (const auto& [key, value] : fields) append_pair(key, value);
  return out;
}

std::unique_ptr<spdlog::formatter> MakeLogFormatter(LogFormat format) {
  return std::make_unique<StructuredFormatter>(format);
}

void SetUpLogging(LogFormat format, const std::string& level) {
  // spdlog's own default logger writes to stdout, in colour.
  auto logger =
      std::make_shared<spdlog::logger>("vmlab", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(MakeLogFormatter(format));
  spdlog::set_default_logger(std::move(logger));
  spdlog::set_level(spdlog::level::from_str(level));
}

LogFields::LogFields(std::vector<LogField> fields) : pushed_(fields.size()) {
  for (auto& field : fields) thread_fields.push_back(std::move(field));
}

LogFields::~LogFields() { thread_fields.resize(thread_fields.size() - pushed_); }

std::vector<LogField> LogFields::Current() { return thread_fields; }

std::string NewReconcileId() {
  static std::mutex mutex;
  static std::mt19937_64 engine{std::random_device{}()};
  std::lock_guard guard(mutex);
  return fmt::format("{:016x}", engine());
}

}  // namespace vmlab::controller
