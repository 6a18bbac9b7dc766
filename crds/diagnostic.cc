#include "crds/diagnostic.h"

#include <fmt/format.h>

namespace vmlab::crds {

std::string FormatDiagnostic(const Diagnostic& d) {
  const std::string_view severity = d.severity == Severity::kError ? "error" : "warning";
  if (d.field.empty()) {
    return fmt::format("{}:{}:{}: {}: {}", d.file, d.pos.line, d.pos.column, severity, d.message);
  }
  return fmt::format("{}:{}:{}: {}: {}: {}", d.file, d.pos.line, d.pos.column, severity, d.field,
                     d.message);
}

}  // namespace vmlab::crds
