#include "controller/duration.h"

#include <fmt/format.h>

#include <charconv>

namespace vmlab::controller {

Result<Duration> ParseDuration(std::string_view text) {
  auto invalid = [&] {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("\"{}\" is not a duration; write a number with a unit: ms, s, m "
                                 "or h (such as 200ms, 30s, 1m30s)",
                                 text));
  };
  if (text.empty()) return invalid();
  Duration total = Duration::zero();
  std::string_view rest = text;
  while (!rest.empty()) {
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
    if (ec != std::errc() || value < 0) return invalid();
    rest.remove_prefix(static_cast<std::size_t>(end - rest.data()));
    if (rest.starts_with("ms")) {
      total += std::chrono::milliseconds(value);
      rest.remove_prefix(2);
    } else if (rest.starts_with("s")) {
      total += std::chrono::seconds(value);
      rest.remove_prefix(1);
    } else if (rest.starts_with("m")) {
      total += std::chrono::minutes(value);
      rest.remove_prefix(1);
    } else if (rest.starts_with("h")) {
      total += std::chrono::hours(value);
      rest.remove_prefix(1);
    } else {
      return invalid();
    }
  }
  return total;
}

}  // namespace vmlab::controller
