// The controller's state dir: created 0700 and locked (flock) for the life of
// the process, so that two controllers never share one.
#pragma once

#include <filesystem>

#include "crds/result.h"

namespace vmlab::controller {

class StateDirLock {
 public:
  // Creates `dir` if needed and takes its lock. The error names the holder's PID.
  [[nodiscard]] static Result<StateDirLock> Acquire(const std::filesystem::path& dir);
  StateDirLock(StateDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  StateDirLock& operator=(StateDirLock&&) = delete;
  StateDirLock(const StateDirLock&) = delete;
  ~StateDirLock();

 private:
  explicit StateDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace vmlab::controller
