// Helpers for the cache services vmlab runs as child processes
// (apt-cacher-ng, docker-registry): started detached from the controller's
// signal mask and descriptors, stopped by PID, and a process a killed
// controller left behind recognised by its pid file and command line.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "crds/result.h"

namespace vmlab::reconcilers::cache {

// Starts argv[0] (an absolute path) with stdin from /dev/null and stdout and
// stderr into `output` (truncated), an empty signal mask, default SIGTERM,
// SIGINT and SIGHUP, and no descriptor but those three.
[[nodiscard]] Result<pid_t> SpawnService(const std::vector<std::string>& argv,
                                         const std::filesystem::path& output);

// Stops a child this process started: SIGTERM, then SIGKILL after `grace`; reaped.
void StopChild(pid_t pid, std::chrono::milliseconds grace = std::chrono::seconds(5));

// If the pid file names a running process whose command line contains every
// one of `markers`, stops it (SIGTERM, then SIGKILL after 5 s). Only such a
// process is touched: the pid may have been reused.
void StopLeftover(const std::filesystem::path& pid_file, const std::vector<std::string>& markers,
                  const std::string& what);

[[nodiscard]] pid_t ReadPidFile(const std::filesystem::path& path);

// The last `bytes` of a file, trailing blanks removed (a child's output for an error).
[[nodiscard]] std::string Tail(const std::filesystem::path& path, std::size_t bytes);

// Bytes of the regular files under `folder`.
[[nodiscard]] double DiskUsage(const std::filesystem::path& folder);

// "exit N" or "killed by signal N" for a waitpid status.
[[nodiscard]] std::string DescribeExit(int status);

}  // namespace vmlab::reconcilers::cache
