#include "controller/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>
#include <thread>

namespace vmlab::controller {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(LoggingTest, LogfmtQuotesOnlyWhatNeedsItAndEscapesTheRest) {
  EXPECT_EQ(
      FormatLogLine(LogFormat::kLogfmt, "2026-11-26T12:00:00.123Z", "info", "domains created",
                    {{"lab", "spk"}, {"reconcile", "00ff"}}),
      R"(ts=2026-11-26T12:00:00.123Z level=info msg="domains created" lab=spk reconcile=00ff)");
  EXPECT_EQ(FormatLogLine(LogFormat::kLogfmt, "t", "warn", "ready", {{"empty", ""}, {"eq", "a=b"}}),
            R"(ts=t level=warn msg=ready empty="" eq="a=b")");
  // A message cannot forge fields or lines: quotes, newlines and backslashes are escaped.
  EXPECT_EQ(FormatLogLine(LogFormat::kLogfmt, "t", "error", "a\" lab=evil\nlevel=info \\", {}),
            R"(ts=t level=error msg="a\" lab=evil\nlevel=info \\")");
  // Keys are identifiers; invalid UTF-8 and control characters do not pass through.
  EXPECT_EQ(FormatLogLine(LogFormat::kLogfmt, "t", "info", std::string("\xff\x01ok\xc3\xa9"),
                          {{"bad key", "x"}}),
            "ts=t level=info msg=\"\\ufffd\\u0001ok\xc3\xa9\" bad_key=x");
}

TEST(LoggingTest, JsonLinesAreObjectsWithEscapedStrings) {
  EXPECT_EQ(FormatLogLine(LogFormat::kJson, "t", "info", "say \"hi\"\n\\", {{"lab", "spk"}}),
            R"({"ts":"t","level":"info","msg":"say \"hi\"\n\\","lab":"spk"})");
  EXPECT_EQ(FormatLogLine(LogFormat::kJson, "t", "info", std::string("\x1f\xe2\x82"), {}),
            R"({"ts":"t","level":"info","msg":"\u001f\ufffd\ufffd"})")
      << "a truncated UTF-8 sequence is replaced byte by byte";
}

TEST(LoggingTest, FieldsAreScopedToTheThreadAndNest) {
  EXPECT_TRUE(LogFields::Current().empty());
  {
    const LogFields outer({{"lab", "a"}, {"reconcile", "1"}});
    {
      const LogFields inner(std::vector<LogField>{{"event", "Created"}});
      EXPECT_EQ(LogFields::Current(),
                (std::vector<LogField>{{"lab", "a"}, {"reconcile", "1"}, {"event", "Created"}}));
    }
    std::vector<LogField> seen_elsewhere = {{"x", "y"}};
    std::thread([&] { seen_elsewhere = LogFields::Current(); }).join();
    EXPECT_TRUE(seen_elsewhere.empty()) << "another thread has its own fields";
    EXPECT_EQ(LogFields::Current().size(), 2u);
  }
  EXPECT_TRUE(LogFields::Current().empty());
}

TEST(LoggingTest, SpdlogLinesCarryLevelMessageAndTheThreadsFields) {
  std::ostringstream out;
  auto logger = std::make_shared<spdlog::logger>(
      "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  logger->set_formatter(MakeLogFormatter(LogFormat::kJson));
  logger->set_level(spdlog::level::info);
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  {
    const LogFields fields({{"lab", "spk"}, {"reconcile", NewReconcileId()}});
    spdlog::warn("drift: {} stopped", "spk-worker-1");
    spdlog::debug("not at info");
  }
  spdlog::info("idle");
  spdlog::set_default_logger(previous);
  const std::string text = out.str();
  EXPECT_THAT(text, ::testing::MatchesRegex(
                        R"(\{"ts":"20[0-9-]+T[0-9:.]+Z","level":"warn","msg":"drift: spk-worker-1 )"
                        R"(stopped","lab":"spk","reconcile":"[0-9a-f]{16}"\}
\{"ts":"[^"]+","level":"info","msg":"idle"\}
)"));
  EXPECT_THAT(text, Not(HasSubstr("not at info")));
}

TEST(LoggingTest, ReconcileIdsDiffer) {
  EXPECT_NE(NewReconcileId(), NewReconcileId());
  EXPECT_EQ(NewReconcileId().size(), 16u);
  LogFormat format = LogFormat::kJson;
  EXPECT_TRUE(ParseLogFormat("logfmt", format));
  EXPECT_EQ(format, LogFormat::kLogfmt);
  EXPECT_FALSE(ParseLogFormat("text", format));
}

}  // namespace
}  // namespace vmlab::controller
