#include "controller/state_dir.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace vmlab::controller {

Result<StateDirLock> StateDirLock::Acquire(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("cannot create state dir {}: {}", dir.string(), ec.message()));
  }
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  const std::filesystem::path path = dir / "lock";
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buffer[32] = {};
    const ssize_t n = pread(fd, buffer, sizeof buffer - 1, 0);
    close(fd);
    const std::string holder = n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "?";
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("another vmlab controller (pid {}) is using the state dir {}; "
                                 "stop it, or give this one its own --state-dir",
                                 holder.substr(0, holder.find('\n')), dir.string()));
  }
  const std::string pid = fmt::format("{}\n", getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    close(fd);
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("cannot write {}: {}", path.string(), std::strerror(errno)));
  }
  return StateDirLock(fd);
}

StateDirLock::~StateDirLock() {
  if (fd_ >= 0) close(fd_);  // releases the flock
}

}  // namespace vmlab::controller
