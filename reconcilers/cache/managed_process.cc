#include "reconcilers/cache/managed_process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

extern char** environ;

namespace vmlab::reconcilers::cache {
namespace fs = std::filesystem;

Result<pid_t> SpawnService(const std::vector<std::string>& argv, const fs::path& output) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  // None of the controller's sockets or files go to the child.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  // The controller blocks SIGINT/SIGTERM in its threads; the child must not
  // inherit that, or it could not be stopped.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGHUP);
  sigaddset(&defaults, SIGPIPE);  // ignored by the controller, not by what it runs
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned =
      posix_spawn(&pid, argv.front().c_str(), &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (spawned != 0) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot start {}: {}", argv.front(), std::strerror(spawned)));
  }
  return pid;
}

void StopChild(pid_t pid, std::chrono::milliseconds grace) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

pid_t ReadPidFile(const fs::path& path) {
  std::ifstream in(path);
  long pid = 0;
  return in >> pid ? static_cast<pid_t>(pid) : 0;
}

void StopLeftover(const fs::path& pid_file, const std::vector<std::string>& markers,
                  const std::string& what) {
  const pid_t pid = ReadPidFile(pid_file);
  if (pid <= 1) return;
  std::ifstream cmdline(fmt::format("/proc/{}/cmdline", pid), std::ios::binary);
  std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  std::replace(args.begin(), args.end(), '\0', ' ');
  if (args.empty() || !std::all_of(markers.begin(), markers.end(), [&](const std::string& m) {
        return args.find(m) != std::string::npos;
      })) {
    return;
  }
  spdlog::warn("{}: stopping pid {} left by an earlier controller", what, pid);
  kill(pid, SIGTERM);
  for (int i = 0; i < 250 && kill(pid, 0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (kill(pid, 0) == 0) kill(pid, SIGKILL);
}

std::string Tail(const fs::path& path, std::size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  if (all.size() > bytes) all = all.substr(all.size() - bytes);
  while (!all.empty() && (all.back() == '\n' || all.back() == ' ')) all.pop_back();
  return all;
}

double DiskUsage(const fs::path& folder) {
  std::error_code ec;
  double total = 0;
  for (auto it = fs::recursive_directory_iterator(folder, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += static_cast<double>(it->file_size(ec));
  }
  return total;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return fmt::format("exit {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return "stopped";
}

}  // namespace vmlab::reconcilers::cache
