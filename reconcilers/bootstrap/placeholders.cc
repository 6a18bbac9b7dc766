#include "reconcilers/bootstrap/placeholders.h"

#include <algorithm>

namespace vmlab::reconcilers::bootstrap {

std::string FillPlaceholders(std::string_view text,
                             const std::vector<std::pair<std::string, std::string>>& values) {
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t open = text.find('@', at);
    if (open == std::string_view::npos) break;
    out.append(text, at, open - at);
    const std::size_t close = text.find('@', open + 1);
    if (close == std::string_view::npos) {
      at = open;
      break;
    }
    const std::string_view name = text.substr(open + 1, close - open - 1);
    const auto value = std::find_if(values.begin(), values.end(),
                                    [&](const auto& entry) { return entry.first == name; });
    if (value == values.end()) {
      // Not a placeholder: keep this '@'; the next one may open one.
      out += '@';
      at = open + 1;
      continue;
    }
    out += value->second;
    at = close + 1;
  }
  out.append(text.substr(std::min(at, text.size())));
  return out;
}

}  // namespace vmlab::reconcilers::bootstrap
