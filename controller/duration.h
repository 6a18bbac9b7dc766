// Durations on the command line: "200ms", "30s", "5m", "1h", or a sum such as "1m30s".
#pragma once

#include <string_view>

#include "controller/clock.h"
#include "crds/result.h"

namespace vmlab::controller {

[[nodiscard]] Result<Duration> ParseDuration(std::string_view text);

}  // namespace vmlab::controller
