#include "controller/state_dir.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <regex>
#include <string>

namespace vmlab::controller {

Result<StateDirLock> StateDirLock::Acquire(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("cannot create state dir {}: {}", dir.string(), ec.message()));
  }
  // 0711: qemu, running as the distribution's qemu user, passes through it
  // to the pool and console folders (reconcilers/infrastructure/lab_layout.h);
  // it lists nothing, and every secret lives in a 0700 folder of its own.
  std::filesystem::permissions(dir,
                               std::filesystem::perms::owner_all |
                                   std::filesystem::perms::group_exec |
                                   std::filesystem::perms::others_exec,
                               ec);
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

std::vector<std::filesystem::path> RemoveLeftoverTempFiles(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  static const std::regex kTempFile(R"(.+\.tmp\.[0-9]+)");
  static const std::regex kTempFolder(R"(\..+\.new\.[0-9]+)");
  std::vector<fs::path> removed;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  for (const fs::recursive_directory_iterator end; !ec && it != end; it.increment(ec)) {
    const fs::path path = it->path();
    const std::string name = path.filename().string();
    std::error_code entry_error;  // a dangling link must not end the walk
    const bool folder = it->is_directory(entry_error) && !it->is_symlink(entry_error);
    if (folder && it.depth() == 0 && name == "pool") {
      it.disable_recursion_pending();  // libvirt's volumes: not ours to sweep
      continue;
    }
    if ((folder && std::regex_match(name, kTempFolder)) ||
        (!folder && std::regex_match(name, kTempFile))) {
      if (folder) it.disable_recursion_pending();
      std::error_code remove_error;
      if (fs::remove_all(path, remove_error) > 0 && !remove_error) removed.push_back(path);
    }
  }
  return removed;
}

}  // namespace vmlab::controller
