#include "reconcilers/cache/apt_cache.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "controller/status_store.h"
#include "metrics/cache_metrics.h"

extern char** environ;

namespace vmlab::reconcilers::cache {
namespace fs = std::filesystem;

namespace {

bool Listening(const std::string& address, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in target{};
  target.sin_family = AF_INET;
  target.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool parsed = inet_pton(AF_INET, address.c_str(), &target.sin_addr) == 1;
  const bool ok =
      parsed && connect(fd, reinterpret_cast<const sockaddr*>(&target), sizeof(target)) == 0;
  close(fd);
  return ok;
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

pid_t ReadPidFile(const fs::path& path) {
  std::ifstream in(path);
  long pid = 0;
  return in >> pid ? static_cast<pid_t>(pid) : 0;
}

// An apt-cacher-ng a previous controller of this state dir started and left
// running (the controller was killed): it holds the port, so it is stopped.
// Only a process running apt-cacher-ng with this state dir's configuration
// is touched (the state dir is locked by this controller).
void StopLeftover(const fs::path& pid_file, const std::string& conf) {
  const pid_t pid = ReadPidFile(pid_file);
  if (pid <= 1) return;
  std::ifstream cmdline(fmt::format("/proc/{}/cmdline", pid), std::ios::binary);
  std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  std::replace(args.begin(), args.end(), '\0', ' ');
  if (args.find("apt-cacher-ng") == std::string::npos || args.find(conf) == std::string::npos) {
    return;
  }
  spdlog::warn("apt cache: stopping apt-cacher-ng pid {} left by an earlier controller", pid);
  kill(pid, SIGTERM);
  for (int i = 0; i < 250 && kill(pid, 0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (kill(pid, 0) == 0) kill(pid, SIGKILL);
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

}  // namespace

Status CheckAptCacheMode(const std::string& mode) {
  if (mode == "off" || mode == "managed") return {};
  if (mode.starts_with("http://") && mode.size() > 7 &&
      mode.find_first_of(" \"'\\") == std::string::npos) {
    return {};
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("--apt-cache {}: give managed (vmlab runs apt-cacher-ng), off, or "
                               "the http:// URL of an apt proxy the lab's nodes can reach",
                               mode));
}

AptCache::AptCache(AptCacheOptions options, metrics::CacheMetrics* metrics)
    : options_(std::move(options)), metrics_(metrics) {
  if (Managed()) supervisor_ = std::thread([this] { Supervise(); });
}

AptCache::~AptCache() { Stop(); }

void AptCache::Stop() {
  {
    std::lock_guard guard(mutex_);
    if (stopping_) return;
    stopping_ = true;
    StopLocked();
  }
  wake_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
}

Result<std::string> AptCache::Serve(const std::string& lab, const std::string& gateway) {
  if (!Enabled()) return std::string();
  if (!Managed()) {
    std::string url = options_.mode;
    while (url.ends_with('/')) url.pop_back();
    return url;
  }
  const std::string url = fmt::format("http://{}:{}", gateway, options_.port);
  std::lock_guard guard(mutex_);
  if (stopping_) return MakeError(ErrorCode::kUnavailable, "the controller is stopping");
  gateways_[lab] = gateway;
  if (pid_ != 0 && Wanted() == bound_) return url;
  if (auto started = RestartLocked(); !started) return std::unexpected(started.error());
  return url;
}

std::set<std::string> AptCache::Wanted() const {
  std::set<std::string> wanted;
  for (const auto& [lab, address] : gateways_) wanted.insert(address);
  return wanted;
}

Status AptCache::RestartLocked() {
  StopLocked();
  bound_ = Wanted();
  if (bound_.empty()) return {};
  auto started = StartLocked();
  if (!started) last_error_ = started.error().message;
  return started;
}

void AptCache::Release(const std::string& lab) {
  std::lock_guard guard(mutex_);
  if (gateways_.erase(lab) == 0 || Wanted() == bound_) return;
  (void)RestartLocked();
}

Status AptCache::StartLocked() {
  const fs::path root = options_.state_dir / "cache" / "apt";
  std::error_code ec;
  for (const char* sub : {"cache", "log", "conf", "run"}) fs::create_directories(root / sub, ec);
  if (ec) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot create {}: {}", root.string(), ec.message()));
  }
  if (access(options_.binary.c_str(), X_OK) != 0) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("{} is not installed (Debian package apt-cacher-ng); install it, "
                                 "or run the controller with --apt-cache off or --apt-cache URL",
                                 options_.binary));
  }
  std::vector<std::string> ports;
  for (const int port : options_.upstream_ports) ports.push_back(std::to_string(port));
  const std::string config = fmt::format(
      "# apt-cacher-ng for vmlab's labs (generated by vmlab; rewritten at each start).\n"
      "CacheDir: {cache}\nLogDir: {log}\nSupportDir: /usr/lib/apt-cacher-ng\n"
      "Port: {port}\nBindAddress: {bind}\nForeGround: 1\nPidFile: {run}/pid\n"
      "SocketPath: {run}/socket\nReportPage: acng-report.html\nExThreshold: 4\n"
      "AllowUserPorts: {ports}\n"
      "# https repositories are reached as http://HTTPS///HOST/PATH and cached; a CONNECT\n"
      "# to port 443 (e.g. a repository key) passes through uncached.\n"
      "PassThroughPattern: :443$\n",
      fmt::arg("cache", (root / "cache").string()), fmt::arg("log", (root / "log").string()),
      fmt::arg("port", options_.port), fmt::arg("bind", fmt::join(bound_, " ")),
      fmt::arg("run", (root / "run").string()), fmt::arg("ports", fmt::join(ports, " ")));
  if (auto written = controller::WriteFileAtomically(root / "conf" / "acng.conf", config);
      !written) {
    return std::unexpected(written.error());
  }
  const std::string out = (root / "apt-cacher-ng.out").string();
  const std::string conf = (root / "conf").string();
  StopLeftover(root / "run" / "pid", conf);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(),
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
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> argv = {const_cast<char*>(options_.binary.c_str()), const_cast<char*>("-c"),
                             const_cast<char*>(conf.c_str()), nullptr};
  pid_t pid = 0;
  const int spawned =
      posix_spawn(&pid, options_.binary.c_str(), &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (spawned != 0) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot start {}: {}", options_.binary, std::strerror(spawned)));
  }
  pid_ = pid;
  // Ready once it accepts connections on every address it serves.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;
      return MakeError(
          ErrorCode::kUnavailable,
          fmt::format("apt-cacher-ng exited at start ({}): {}",
                      WIFEXITED(status) ? fmt::format("exit {}", WEXITSTATUS(status)) : "killed",
                      Tail(out, 400)));
    }
    // Listening, and by this child (not by one left from an earlier run).
    if (std::all_of(bound_.begin(), bound_.end(),
                    [&](const std::string& a) { return Listening(a, options_.port); }) &&
        ReadPidFile(root / "run" / "pid") == pid_) {
      spdlog::info("apt cache: apt-cacher-ng (pid {}) serving on {} port {}", pid_,
                   fmt::join(bound_, ", "), options_.port);
      last_error_.clear();
      return {};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  StopLocked();
  return MakeError(ErrorCode::kUnavailable,
                   fmt::format("apt-cacher-ng did not listen on {} port {} within 10 s: {}",
                               fmt::join(bound_, ", "), options_.port, Tail(out, 400)));
}

void AptCache::StopLocked() {
  if (pid_ == 0) return;
  kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = 0;
}

pid_t AptCache::Pid() {
  std::lock_guard guard(mutex_);
  return pid_;
}

std::string AptCache::LastError() {
  std::lock_guard guard(mutex_);
  return last_error_;
}

AptCacheTotals AptCache::Poll() {
  std::lock_guard guard(mutex_);
  const fs::path root = options_.state_dir / "cache" / "apt";
  const fs::path log = root / "log" / "apt-cacher.log";
  std::error_code ec;
  const auto size = fs::file_size(log, ec);
  if (ec) return totals_;
  if (size < log_offset_) log_offset_ = 0;  // rotated
  std::ifstream in(log, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(log_offset_));
  std::string line;
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t served_bytes = 0;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // a line still being written: read it next time
    log_offset_ += line.size() + 1;
    // TIME|KIND|BYTES|CLIENT|PATH: I = fetched from upstream, O = sent to a
    // client, E = an error; a failed transfer carries "[HTTP error ...]".
    std::vector<std::string> fields;
    for (std::size_t at = 0; fields.size() < 4;) {
      const auto bar = line.find('|', at);
      if (bar == std::string::npos) break;
      fields.push_back(line.substr(at, bar - at));
      at = bar + 1;
      if (fields.size() == 4) fields.push_back(line.substr(at));
    }
    if (fields.size() != 5 || fields[4].find('[') != std::string::npos) continue;
    const std::string& path = fields[4];
    if (fields[1] == "I") {
      ++fetched_[path];
      continue;
    }
    if (fields[1] != "O") continue;
    std::uint64_t bytes = 0;
    try {
      bytes = std::stoull(fields[2]);
    } catch (const std::exception&) {
    }
    if (auto it = fetched_.find(path); it != fetched_.end() && it->second > 0) {
      // Sent right after it came from upstream: a miss.
      if (--it->second == 0) fetched_.erase(it);
      ++misses;
    } else if (fs::is_regular_file(root / "cache" / path, ec)) {
      ++hits;  // sent from what the cache holds
    } else {
      continue;  // an error page or a report, not a file
    }
    served_bytes += bytes;
  }
  totals_.hits += hits;
  totals_.misses += misses;
  totals_.served_bytes += served_bytes;
  if (metrics_ && (hits > 0 || misses > 0)) {
    metrics_->CountRequests("apt", hits, misses);
    metrics_->CountServedBytes("apt", served_bytes);
  }
  return totals_;
}

void AptCache::Supervise() {
  for (int round = 1;; ++round) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, std::chrono::seconds(2), [this] { return stopping_; });
      if (stopping_) return;
      int status = 0;
      bool start = false;
      if (pid_ != 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        spdlog::warn("apt cache: apt-cacher-ng exited ({}); starting it again",
                     WIFEXITED(status) ? fmt::format("exit {}", WEXITSTATUS(status)) : "killed");
        start = true;
      } else if (pid_ == 0 && !bound_.empty() && round % 5 == 0) {
        start = true;  // an earlier start failed: tried again every 10 s
      }
      if (start && !bound_.empty()) {
        if (auto started = StartLocked(); !started) {
          last_error_ = started.error().message;
          spdlog::error("apt cache: {}", last_error_);
        }
      }
    }
    (void)Poll();
    if (metrics_ && round % 15 == 0) {
      metrics_->SetStoredBytes("apt", DiskUsage(options_.state_dir / "cache" / "apt" / "cache"));
    }
  }
}

}  // namespace vmlab::reconcilers::cache
