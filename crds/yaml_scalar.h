// How YAML 1.2's core schema reads a plain (unquoted) scalar.
//
// Shared by the parser, which types values by it, and the canonical writer,
// which quotes exactly the strings that would otherwise read back as
// something else ("123", "true", "1.5").
#pragma once

#include <string_view>

namespace vmlab::crds {

enum class ScalarKind { kNull, kBool, kInt, kFloat, kString };

// The kind of the plain scalar `text` (decimal integers only; "0x10" is a string).
[[nodiscard]] ScalarKind ClassifyPlainScalar(std::string_view text);

// True for an optional sign followed by decimal digits.
[[nodiscard]] bool IsDecimalInteger(std::string_view text);

}  // namespace vmlab::crds
