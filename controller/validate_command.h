// `vmlab validate PATH...`: parse and validate manifests without touching anything.
//
// Files are read whole; folders are scanned one level deep for manifests (see
// manifest_files.h), in name order. All documents are checked together, so
// duplicate names and overlapping networks across files are found.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace vmlab::controller {

inline constexpr int kExitValid = 0;
inline constexpr int kExitInvalid = 1;
inline constexpr int kExitUsage = 2;  // usage or I/O error

struct ValidateOptions {
  std::vector<std::string> paths;
  bool quiet = false;  // no per-document "valid" lines, no skipped-file notes
};

// Writes a summary to `out` and one line per problem to `err`; returns the exit code.
[[nodiscard]] int RunValidate(const ValidateOptions& options, std::ostream& out, std::ostream& err);

}  // namespace vmlab::controller
