// Build identity, for `vmlab version`, logs and the build_info metric.
#pragma once

namespace vmlab::controller {
extern const char* const kVersion;    // project version, e.g. "0.1.0"
extern const char* const kGitCommit;  // `git describe --always --dirty` at build time
}  // namespace vmlab::controller
