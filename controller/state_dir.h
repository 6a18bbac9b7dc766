// The controller's state dir: created 0700 and locked (flock) for the life of
// the process, so that two controllers never share one.
#pragma once

#include <filesystem>
#include <vector>

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

// Removes what a process killed in the middle of a write leaves in `dir`:
// temp files of atomic writes (NAME.tmp.PID) and half-made folders
// (.NAME.new.PID), everywhere but libvirt's pool. Call with the lock held (no
// other controller writes then). Returns what it removed.
[[nodiscard]] std::vector<std::filesystem::path> RemoveLeftoverTempFiles(
    const std::filesystem::path& dir);

}  // namespace vmlab::controller
