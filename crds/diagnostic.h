// Diagnostics: what is wrong with a manifest, where, and what to do about it.
//
// Printed as `PATH:LINE:COL: error: FIELD.PATH: message` (DESIGN.md "CLI");
// the field part is left out for problems that belong to no field (a YAML
// syntax error, an empty document). Lines and columns count from 1.
#pragma once

#include <string>
#include <string_view>

namespace vmlab::crds {

struct SourcePos {
  int line = 1;
  int column = 1;
  friend bool operator==(const SourcePos&, const SourcePos&) = default;
};

enum class Severity { kError, kWarning };

struct Diagnostic {
  Severity severity = Severity::kError;
  std::string file;
  SourcePos pos;
  std::string field;  // e.g. "spec.workers.replicas"; empty when no field applies
  std::string message;
};

[[nodiscard]] std::string FormatDiagnostic(const Diagnostic& diagnostic);

}  // namespace vmlab::crds
