// Parsing and validation of LabCluster manifests.
//
// ParseManifests turns one file's text (one or more YAML documents) into
// ParsedDocuments: the typed LabCluster with defaults applied when the
// structure is sound, every problem found as a Diagnostic with file, line,
// column and field path, and where each field was written. It never throws and
// never reads the filesystem. ValidateManifestSet adds the checks that span
// documents (duplicate names, overlapping networks). Pure functions: safe to
// call from several threads on different inputs.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crds/diagnostic.h"
#include "crds/labcluster_types.h"

namespace vmlab::crds {

// Manifests are a few kilobytes; anything past this is refused unread.
inline constexpr std::size_t kMaxManifestBytes = 1 << 20;

struct FieldLocation {
  SourcePos key;    // where the field's name is written
  SourcePos value;  // where its value starts
};

struct ParsedDocument {
  std::string file;
  int index = 0;  // position of the document in its file, from 0
  SourcePos start;
  // metadata.name as written, when it is a string (even an invalid one), so
  // that documents can be told apart in messages and cross-checks.
  std::string name;
  // The typed object with defaults applied; present when the document's
  // structure and types are valid (semantic errors may remain: see valid()).
  std::optional<LabCluster> object;
  std::map<std::string, FieldLocation, std::less<>> fields;  // by field path
  std::vector<Diagnostic> diagnostics;

  // True when there is a typed object and no error (warnings allowed).
  [[nodiscard]] bool valid() const;
  // Where `field` (or, if it was not written, its nearest written ancestor) is.
  [[nodiscard]] SourcePos PositionOf(std::string_view field) const;
  void AddError(std::string_view field, std::string message);
  void AddWarning(std::string_view field, std::string message);
};

// Why a manifest of `bytes` bytes is refused unread, or nullopt when its size is fine.
[[nodiscard]] std::optional<std::string> CheckManifestSize(std::size_t bytes);

// Parses and validates every document in `text`; `file` names the source in
// diagnostics. Documents come back in file order.
[[nodiscard]] std::vector<ParsedDocument> ParseManifests(std::string_view file,
                                                         std::string_view text);

// Orders `doc.diagnostics` by position (stable for equal positions).
void SortDiagnostics(ParsedDocument& doc);

// Cross-document rules over the whole set (all files of a folder or of one
// `vmlab validate` call): a metadata.name used twice, and lab networks that
// overlap. Each problem is reported on every document involved.
void ValidateManifestSet(std::span<ParsedDocument> documents);

}  // namespace vmlab::crds
