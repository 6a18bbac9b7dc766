#include "reconcilers/cache/apt_cache.h"

#include <arpa/inet.h>
#include <cpprest/filestream.h>
#include <cpprest/http_client.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <sstream>

#include "controller/status_store.h"
#include "metrics/cache_metrics.h"
#include "reconcilers/cache/managed_process.h"

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

}  // namespace

namespace {

// dpkg's version order, enough for repository indexes: digit runs compare as
// numbers, other runs character by character with '~' before everything.
int CompareVersions(const std::string& a, const std::string& b) {
  std::size_t i = 0;
  std::size_t j = 0;
  auto order = [](char c) {
    return c == '~' ? -1 : std::isalpha(static_cast<unsigned char>(c)) ? c : c + 256;
  };
  while (i < a.size() || j < b.size()) {
    while ((i < a.size() && !std::isdigit(static_cast<unsigned char>(a[i]))) ||
           (j < b.size() && !std::isdigit(static_cast<unsigned char>(b[j])))) {
      const int ca =
          i < a.size() && !std::isdigit(static_cast<unsigned char>(a[i])) ? order(a[i]) : 0;
      const int cb =
          j < b.size() && !std::isdigit(static_cast<unsigned char>(b[j])) ? order(b[j]) : 0;
      if (ca != cb) return ca < cb ? -1 : 1;
      if (i < a.size() && !std::isdigit(static_cast<unsigned char>(a[i]))) ++i;
      if (j < b.size() && !std::isdigit(static_cast<unsigned char>(b[j]))) ++j;
    }
    std::size_t na = i;
    while (na < a.size() && std::isdigit(static_cast<unsigned char>(a[na]))) ++na;
    std::size_t nb = j;
    while (nb < b.size() && std::isdigit(static_cast<unsigned char>(b[nb]))) ++nb;
    const std::string da = a.substr(i, na - i);
    const std::string db = b.substr(j, nb - j);
    const std::string ta = da.substr(std::min(da.find_first_not_of('0'), da.size()));
    const std::string tb = db.substr(std::min(db.find_first_not_of('0'), db.size()));
    if (ta.size() != tb.size()) return ta.size() < tb.size() ? -1 : 1;
    if (ta != tb) return ta < tb ? -1 : 1;
    i = na;
    j = nb;
  }
  return 0;
}

struct IndexEntry {
  std::string architecture;
  std::string version;
  std::string filename;
  std::vector<std::string> depends;
};

}  // namespace

Result<std::vector<std::string>> ChoosePackages(const std::string& packages_index,
                                                const std::map<std::string, std::string>& pins) {
  std::map<std::string, std::vector<IndexEntry>> index;
  std::istringstream in(packages_index);
  std::string line;
  std::string name;
  IndexEntry entry;
  auto flush = [&] {
    if (!name.empty() && !entry.filename.empty()) index[name].push_back(entry);
    name.clear();
    entry = {};
  };
  while (std::getline(in, line)) {
    if (line.empty()) {
      flush();
      continue;
    }
    const auto colon = line.find(": ");
    if (colon == std::string::npos || line[0] == ' ') continue;
    const std::string key = line.substr(0, colon);
    const std::string value = line.substr(colon + 2);
    if (key == "Package") name = value;
    if (key == "Version") entry.version = value;
    if (key == "Architecture") entry.architecture = value;
    if (key == "Filename") entry.filename = value;
    if (key == "Depends" || key == "Pre-Depends") {
      std::istringstream items(value);
      for (std::string item; std::getline(items, item, ',');) {
        item = item.substr(item.find_first_not_of(' '));
        entry.depends.push_back(item.substr(0, item.find_first_of(" (|")));
      }
    }
  }
  flush();
  auto newest = [&](const std::string& package, const std::string& prefix) -> const IndexEntry* {
    const auto it = index.find(package);
    if (it == index.end()) return nullptr;
    const IndexEntry* best = nullptr;
    for (const auto& e : it->second) {
      if (!e.version.starts_with(prefix)) continue;
      // vmlab's nodes are amd64 (the index lists other architectures too).
      if (!e.architecture.empty() && e.architecture != "amd64" && e.architecture != "all") continue;
      if (!best || CompareVersions(e.version, best->version) > 0) best = &e;
    }
    return best;
  };
  std::vector<std::string> files;
  std::set<std::string> seen;
  std::vector<std::pair<std::string, std::string>> todo(pins.begin(), pins.end());
  for (std::size_t k = 0; k < todo.size(); ++k) {
    const auto [package, prefix] = todo[k];
    if (!seen.insert(package).second) continue;
    const IndexEntry* chosen = newest(package, prefix);
    if (!chosen) {
      if (pins.contains(package)) {
        return MakeError(ErrorCode::kNotFound,
                         fmt::format("{} {}is not in the repository's index", package,
                                     prefix.empty() ? "" : prefix + "* "));
      }
      continue;  // a dependency from another repository (e.g. Debian's)
    }
    files.push_back(chosen->filename);
    for (const auto& dependency : chosen->depends) todo.emplace_back(dependency, "");
  }
  return files;
}

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
  if (Managed()) {
    supervisor_ = std::thread([this] { Supervise(); });
    warmer_ = std::thread([this] { RunWarmer(); });
  }
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
  warm_wake_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
  if (warmer_.joinable()) warmer_.join();
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
  warm_wanted_.erase(lab);
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
  StopLeftover(root / "run" / "pid", {"apt-cacher-ng", conf}, "apt cache");
  auto spawned = SpawnService({options_.binary, "-c", conf}, out);
  if (!spawned) return std::unexpected(spawned.error());
  const pid_t pid = *spawned;
  pid_ = pid;
  // Ready once it accepts connections on every address it serves.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;
      return MakeError(ErrorCode::kUnavailable,
                       fmt::format("apt-cacher-ng exited at start ({}): {}", DescribeExit(status),
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
  StopChild(pid_);
  pid_ = 0;
}

void AptCache::Warm(const std::string& lab, const std::string& repository,
                    const std::map<std::string, std::string>& pins) {
  if (!Managed() || !repository.starts_with("http://")) return;
  std::lock_guard guard(mutex_);
  const auto gateway = gateways_.find(lab);
  if (stopping_ || gateway == gateways_.end()) return;
  std::string key = repository;
  for (const auto& [name, prefix] : pins) key += " " + name + "=" + prefix;
  warm_wanted_[lab] = key;
  WarmJob& job = warm_jobs_[key];
  const auto now = std::chrono::steady_clock::now();
  const bool retry = job.status.done && !job.status.failure.empty() &&
                     now - job.finished > std::chrono::minutes(10);
  if (job.queued || (job.status.done && !retry) || (!job.status.done && !job.base.empty())) return;
  std::string base = repository.substr(std::string_view("http://").size());
  if (!base.ends_with('/')) base += '/';
  // apt-cacher-ng also answers http://CACHE/HOST/PATH (as it stores it).
  job.base = fmt::format("http://{}:{}/{}", gateway->second, options_.port, base);
  job.pins = pins;
  job.queued = true;
  job.status = {};
  warm_wake_.notify_all();
}

AptWarmStatus AptCache::Warming(const std::string& lab) {
  std::lock_guard guard(mutex_);
  const auto wanted = warm_wanted_.find(lab);
  if (wanted == warm_wanted_.end()) return {};
  return warm_jobs_[wanted->second].status;
}

void AptCache::RunWarmer() {
  while (true) {
    std::string key;
    std::string base;
    std::map<std::string, std::string> pins;
    {
      std::unique_lock lock(mutex_);
      auto next = [this] {
        return std::find_if(warm_jobs_.begin(), warm_jobs_.end(),
                            [](const auto& job) { return job.second.queued; });
      };
      warm_wake_.wait(lock, [&] { return stopping_ || next() != warm_jobs_.end(); });
      if (stopping_) return;
      auto it = next();
      it->second.queued = false;
      key = it->first;
      base = it->second.base;
      pins = it->second.pins;
    }
    AptWarmStatus status;
    try {
      web::http::client::http_client_config config;
      config.set_timeout(std::chrono::seconds(600));
      web::http::client::http_client client(web::uri(base), config);
      auto get = [&](const std::string& path) {
        web::http::http_request request(web::http::methods::GET);
        request.set_request_uri(path);
        request.headers().add(web::http::header_names::user_agent, "vmlab-warm");
        return client.request(request).get();
      };
      auto index = get("Packages");
      if (index.status_code() != 200) {
        throw std::runtime_error(fmt::format("{}Packages: HTTP {}", base, index.status_code()));
      }
      auto files = ChoosePackages(index.extract_utf8string(true).get(), pins);
      if (!files) throw std::runtime_error(files.error().message);
      status.packages = static_cast<int>(files->size());
      for (const auto& file : *files) {
        auto response = get(file);
        if (response.status_code() != 200) {
          throw std::runtime_error(
              fmt::format("{}{}: HTTP {}", base, file, response.status_code()));
        }
        auto sink = concurrency::streams::fstream::open_ostream("/dev/null").get();
        response.body().read_to_end(sink.streambuf()).get();
        sink.close().get();
        ++status.warmed;
      }
      spdlog::info("apt cache: warmed {} package(s) from {}", status.warmed, base);
    } catch (const std::exception& e) {
      status.failure = e.what();
      spdlog::warn("apt cache: cannot warm packages: {}", status.failure);
    }
    status.done = true;
    std::lock_guard guard(mutex_);
    WarmJob& job = warm_jobs_[key];
    job.status = status;
    job.finished = std::chrono::steady_clock::now();
  }
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
                     DescribeExit(status));
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
