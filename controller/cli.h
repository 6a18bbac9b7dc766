// The `vmlab` command line: parses arguments and runs one subcommand.
#pragma once

#include <ostream>

namespace vmlab::controller {

// Runs vmlab with `argv` and returns the process exit code. Output goes to
// `out`, problems to `err`; --help text goes to `out` with exit code 0.
[[nodiscard]] int RunCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace vmlab::controller
