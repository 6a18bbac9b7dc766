// "Did you mean" hints for misspelt field names and enum values.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace vmlab::crds {

// The candidate closest to `given` when it is a plausible misspelling (small
// edit distance, a different letter case, or a truncation), else nullopt.
[[nodiscard]] std::optional<std::string> SuggestClosest(
    std::string_view given, std::span<const std::string_view> candidates);

}  // namespace vmlab::crds
