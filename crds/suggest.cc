#include "crds/suggest.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace vmlab::crds {
namespace {

char Lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Levenshtein distance over lower-cased characters.
std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      const std::size_t substitution = diagonal + (Lower(a[i - 1]) == Lower(b[j - 1]) ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitution});
      diagonal = above;
    }
  }
  return row[b.size()];
}

bool StartsWithIgnoringCase(std::string_view text, std::string_view prefix) {
  return prefix.size() <= text.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(),
                    [](char x, char y) { return Lower(x) == Lower(y); });
}

}  // namespace

std::optional<std::string> SuggestClosest(std::string_view given,
                                          std::span<const std::string_view> candidates) {
  if (given.empty() || given.size() > 64) return std::nullopt;
  const std::size_t allowed = given.size() <= 4 ? 1 : 2;
  std::optional<std::string> best;
  std::size_t best_distance = allowed + 1;
  for (const std::string_view candidate : candidates) {
    std::size_t distance = EditDistance(given, candidate);
    // A truncated or extended name ("memory" for "memoryMiB") is a near miss too.
    if (distance > allowed && given.size() >= 3 &&
        (StartsWithIgnoringCase(candidate, given) || StartsWithIgnoringCase(given, candidate))) {
      distance = allowed;
    }
    if (distance < best_distance) {
      best_distance = distance;
      best = std::string(candidate);
    }
  }
  return best;
}

}  // namespace vmlab::crds
