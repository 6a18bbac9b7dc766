// Placeholders in the bootstrap scripts: @NAME@ stands for a value vmlab
// fills in (fmt's braces would clash with the shell's).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vmlab::reconcilers::bootstrap {

// Replaces every @NAME@ of `text` whose NAME is one of `values` by its value,
// in one pass from left to right: text a value brings in is never scanned
// again, so a value holding "@OTHER@" (or its own placeholder) stays as it
// is. An @...@ that names no value is kept, '@' elsewhere (such as the
// shell's "$@") too.
[[nodiscard]] std::string FillPlaceholders(
    std::string_view text, const std::vector<std::pair<std::string, std::string>>& values);

}  // namespace vmlab::reconcilers::bootstrap
