#include "reconcilers/cache/registry_mirrors.h"

#include <fmt/format.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <fstream>

#include "controller/status_store.h"
#include "metrics/cache_metrics.h"
#include "reconcilers/cache/cache_sets.h"
#include "reconcilers/cache/image_warmer.h"
#include "reconcilers/cache/managed_process.h"
#include "reconcilers/cache/tcp_relay.h"

namespace vmlab::reconcilers::cache {
namespace fs = std::filesystem;

namespace {

bool SafeUrl(const std::string& url) {
  return (url.starts_with("http://") || url.starts_with("https://")) &&
         url.find_first_of(" \"'\\\n\t") == std::string::npos &&
         url.size() > (url.starts_with("https://") ? 8U : 7U);
}

bool KnownUpstream(const std::string& name) {
  for (const auto& upstream : kMirroredUpstreams) {
    if (name == upstream.name) return true;
  }
  return false;
}

std::string RandomHex(std::size_t bytes) {
  std::vector<unsigned char> random(bytes);
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) return "vmlab";
  std::string hex;
  for (const unsigned char b : random) hex += fmt::format("{:02x}", b);
  return hex;
}

// The value of `key=` in a logrus text line (quoted or bare), empty if absent.
std::string Field(const std::string& line, std::string_view key) {
  std::size_t at = 0;
  while ((at = line.find(key, at)) != std::string::npos) {
    const bool starts = at == 0 || line[at - 1] == ' ';
    at += key.size();
    if (!starts || at >= line.size() || line[at] != '=') continue;
    ++at;
    if (at < line.size() && line[at] == '"') {
      const auto end = line.find('"', at + 1);
      return line.substr(at + 1, end == std::string::npos ? std::string::npos : end - at - 1);
    }
    return line.substr(at, line.find(' ', at) - at);
  }
  return {};
}

bool AcceptsOn(const fs::path& socket_path) {
  sockaddr_un remote{};
  remote.sun_family = AF_UNIX;
  if (socket_path.native().size() >= sizeof(remote.sun_path)) return false;
  std::memcpy(remote.sun_path, socket_path.c_str(), socket_path.native().size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&remote), sizeof(remote)) == 0;
  close(fd);
  return ok;
}

// What a registry that exited said: its panic or fatal line, else its last words.
std::string FirstProblem(const fs::path& log) {
  std::ifstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("panic: ")) return line;
    if (line.find("level=fatal") != std::string::npos ||
        line.find("level=panic") != std::string::npos) {
      const std::string message = Field(line, "msg");
      return message.empty() ? line : message;
    }
  }
  return Tail(log, 300);
}

}  // namespace

Status CheckImageCacheMode(const std::string& mode) {
  if (mode == "off" || mode == "managed") return {};
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("--image-cache {}: give managed (vmlab runs a docker-registry "
                               "mirror per upstream) or off; an existing mirror is given with "
                               "--registry-mirror UPSTREAM=URL",
                               mode));
}

Result<std::map<std::string, std::string>> ParseUpstreamUrls(const std::vector<std::string>& items,
                                                             const char* flag) {
  std::map<std::string, std::string> urls;
  for (const auto& item : items) {
    const auto equals = item.find('=');
    const std::string name = item.substr(0, equals);
    std::string url = equals == std::string::npos ? "" : item.substr(equals + 1);
    while (url.ends_with('/')) url.pop_back();
    if (!KnownUpstream(name) || !SafeUrl(url)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{} {}: give UPSTREAM=URL, UPSTREAM one of registry.k8s.io, "
                                   "docker.io, quay.io and URL an http:// or https:// URL",
                                   flag, item));
    }
    urls[name] = url;
  }
  return urls;
}

struct RegistryMirrors::Registry {
  std::string upstream;
  std::string remote;
  int port = 0;
  pid_t pid = 0;
  std::string error;  // why it last failed to start or exited
  std::chrono::steady_clock::time_point retry_at{};
  std::uintmax_t log_offset = 0;
  std::map<std::string, int> fetched;  // digest -> fetched from upstream, not yet matched
  std::vector<std::pair<std::string, std::uint64_t>> pending;  // (digest, bytes) not yet classified
};

RegistryMirrors::RegistryMirrors(RegistryMirrorsOptions options, metrics::CacheMetrics* metrics)
    : options_(std::move(options)), metrics_(metrics) {
  if (!Managed()) return;
  int index = 0;
  for (const auto& upstream : kMirroredUpstreams) {
    const int port = options_.port + index++;
    if (options_.given.contains(upstream.name)) continue;
    auto registry = std::make_unique<Registry>();
    registry->upstream = upstream.name;
    const auto remote = options_.remotes.find(upstream.name);
    registry->remote = remote == options_.remotes.end() ? upstream.url : remote->second;
    registry->port = port;
    registries_.push_back(std::move(registry));
  }
  relay_ = std::make_unique<TcpRelay>();
  supervisor_ = std::thread([this] { Supervise(); });
  warmer_ = std::thread([this] { RunWarmer(); });
}

RegistryMirrors::~RegistryMirrors() { Stop(); }

void RegistryMirrors::Stop() {
  {
    std::lock_guard guard(mutex_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& registry : registries_) StopLocked(*registry);
  }
  wake_.notify_all();
  warm_wake_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
  if (warmer_.joinable()) warmer_.join();
  relay_.reset();
}

fs::path RegistryMirrors::Root(const std::string& upstream) const {
  return options_.state_dir / "cache" / "images" / upstream;
}

Result<std::map<std::string, std::string>> RegistryMirrors::Serve(const std::string& lab,
                                                                  const std::string& gateway) {
  std::map<std::string, std::string> mirrors = options_.given;
  if (!Managed()) return mirrors;
  std::lock_guard guard(mutex_);
  if (stopping_) return MakeError(ErrorCode::kUnavailable, "the controller is stopping");
  const auto previous = gateways_.find(lab);
  if (previous != gateways_.end() && previous->second != gateway) {
    const std::string old = previous->second;
    gateways_.erase(previous);
    bool shared = false;
    for (const auto& [other, address] : gateways_) shared = shared || address == old;
    if (!shared) {
      for (const auto& registry : registries_) relay_->Close(old, registry->port);
    }
  }
  gateways_[lab] = gateway;
  for (auto& registry : registries_) {
    const fs::path socket = Root(registry->upstream) / "registry.sock";
    if (auto listening = relay_->Listen(gateway, registry->port, socket); !listening) {
      return std::unexpected(listening.error());
    }
    if (registry->pid == 0 && std::chrono::steady_clock::now() >= registry->retry_at) {
      if (auto started = StartLocked(*registry); !started) {
        registry->error = started.error().message;
        spdlog::error("image cache: {}", registry->error);
      }
    }
    mirrors[registry->upstream] = fmt::format("http://{}:{}", gateway, registry->port);
  }
  return mirrors;
}

void RegistryMirrors::Warm(const std::string& lab, const std::set<std::string>& images) {
  std::lock_guard guard(mutex_);
  if (stopping_ || !Managed()) return;
  const auto gateway = gateways_.find(lab);
  if (gateway == gateways_.end()) return;  // not served (yet)
  warm_wanted_[lab] = images;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& image : images) {
    const std::string registry = RegistryOf(image);
    const auto mirror = std::find_if(registries_.begin(), registries_.end(),
                                     [&](const auto& r) { return r->upstream == registry; });
    if (mirror == registries_.end() || warm_queued_.contains(image)) continue;
    if (const auto done = warm_results_.find(image); done != warm_results_.end()) {
      if (done->second.ok || now - done->second.at < std::chrono::minutes(10)) continue;
    }
    warm_queued_.insert(image);
    warm_queue_.emplace_back(image, fmt::format("http://{}:{}", gateway->second, (*mirror)->port));
  }
  warm_wake_.notify_all();
}

WarmStatus RegistryMirrors::Warming(const std::string& lab) {
  std::lock_guard guard(mutex_);
  WarmStatus status;
  const auto wanted = warm_wanted_.find(lab);
  if (wanted == warm_wanted_.end()) return status;
  for (const auto& image : wanted->second) {
    ++status.images;
    const std::string registry = RegistryOf(image);
    if (std::none_of(registries_.begin(), registries_.end(),
                     [&](const auto& r) { return r->upstream == registry; })) {
      ++status.skipped;
      continue;
    }
    const auto result = warm_results_.find(image);
    if (result == warm_results_.end() || warm_queued_.contains(image)) continue;
    if (result->second.ok) {
      ++status.warmed;
    } else {
      ++status.failed;
      if (status.first_failure.empty()) status.first_failure = result->second.error;
    }
  }
  return status;
}

void RegistryMirrors::RunWarmer() {
  while (true) {
    std::pair<std::string, std::string> next;
    {
      std::unique_lock lock(mutex_);
      warm_wake_.wait(lock, [this] { return stopping_ || !warm_queue_.empty(); });
      if (stopping_) return;
      next = warm_queue_.front();
      warm_queue_.erase(warm_queue_.begin());
    }
    auto warmed = WarmImage(next.second, next.first, std::chrono::seconds(600));
    if (warmed) {
      spdlog::info("image cache: warmed {} ({} blobs, {} bytes)", next.first, warmed->blobs,
                   warmed->bytes);
    } else {
      spdlog::warn("image cache: cannot warm {}", warmed.error().message);
    }
    if (metrics_) metrics_->CountWarmed("images", warmed.has_value());
    std::lock_guard guard(mutex_);
    warm_queued_.erase(next.first);
    warm_results_[next.first] = {warmed.has_value(), warmed ? "" : warmed.error().message,
                                 std::chrono::steady_clock::now()};
  }
}

void RegistryMirrors::Release(const std::string& lab) {
  std::lock_guard guard(mutex_);
  warm_wanted_.erase(lab);
  const auto it = gateways_.find(lab);
  if (it == gateways_.end()) return;
  const std::string gateway = it->second;
  gateways_.erase(it);
  for (const auto& [other, address] : gateways_) {
    if (address == gateway) return;
  }
  for (const auto& registry : registries_) relay_->Close(gateway, registry->port);
  if (gateways_.empty()) {
    // Nothing needs the mirrors: their logs are read before they go.
    for (auto& registry : registries_) StopLocked(*registry);
  }
}

Status RegistryMirrors::StartLocked(Registry& registry) {
  // Whatever happens, the next attempt is not before this.
  registry.retry_at = std::chrono::steady_clock::now() + options_.retry_after;
  const fs::path root = Root(registry.upstream);
  std::error_code ec;
  fs::create_directories(root / "storage", ec);
  if (ec) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot create {}: {}", root.string(), ec.message()));
  }
  if (access(options_.binary.c_str(), X_OK) != 0) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("{} is not installed (Debian package docker-registry); install "
                                 "it, or run the controller with --image-cache off",
                                 options_.binary));
  }
  const fs::path config = root / "config.yml";
  const fs::path socket = root / "registry.sock";
  // Quoted for YAML: paths and URLs were checked to hold no quote or backslash.
  const std::string text = fmt::format(
      "# docker-registry mirroring {upstream} for vmlab's labs (generated by vmlab; rewritten\n"
      "# at each start).\n"
      "version: 0.1\n"
      "log: {{level: info, formatter: text}}\n"
      "storage:\n"
      "  filesystem: {{rootdirectory: \"{storage}\"}}\n"
      "  delete: {{enabled: true}}\n"
      "http:\n"
      "  net: unix\n"
      "  addr: \"{socket}\"\n"
      "  secret: \"{secret}\"\n"
      "proxy:\n"
      "  remoteurl: \"{remote}\"\n",
      fmt::arg("upstream", registry.upstream), fmt::arg("storage", (root / "storage").string()),
      fmt::arg("socket", socket.string()), fmt::arg("secret", RandomHex(16)),
      fmt::arg("remote", registry.remote));
  if (auto written = controller::WriteFileAtomically(config, text); !written) {
    return std::unexpected(written.error());
  }
  StopLeftover(root / "registry.pid", {"docker-registry", config.string()},
               "image cache " + registry.upstream);
  fs::remove(socket, ec);  // a socket left behind would keep the registry from listening
  auto spawned = SpawnService({options_.binary, "serve", config.string()}, root / "registry.log");
  if (!spawned) return std::unexpected(spawned.error());
  registry.pid = *spawned;
  registry.error.clear();
  registry.log_offset = 0;  // the log starts anew
  (void)controller::WriteFileAtomically(root / "registry.pid", fmt::format("{}\n", registry.pid));
  spdlog::info("image cache: docker-registry (pid {}) mirroring {} from {}", registry.pid,
               registry.upstream, registry.remote);
  return {};
}

void RegistryMirrors::StopLocked(Registry& registry) {
  if (registry.pid == 0) return;
  StopChild(registry.pid);
  registry.pid = 0;
  std::error_code ec;
  fs::remove(Root(registry.upstream) / "registry.pid", ec);
}

pid_t RegistryMirrors::Pid(const std::string& upstream) {
  std::lock_guard guard(mutex_);
  for (const auto& registry : registries_) {
    if (registry->upstream == upstream) return registry->pid;
  }
  return 0;
}

bool RegistryMirrors::Serving(const std::string& upstream) {
  std::lock_guard guard(mutex_);
  for (const auto& registry : registries_) {
    if (registry->upstream == upstream) {
      return registry->pid != 0 && AcceptsOn(Root(upstream) / "registry.sock");
    }
  }
  return false;
}

std::map<std::string, std::string> RegistryMirrors::Problems() {
  std::lock_guard guard(mutex_);
  std::map<std::string, std::string> problems;
  for (const auto& registry : registries_) {
    if (registry->pid != 0 || registry->error.empty()) continue;  // serving or starting
    problems[registry->upstream] = registry->error;
  }
  return problems;
}

RegistryTotals RegistryMirrors::Poll() {
  std::lock_guard guard(mutex_);
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t served_bytes = 0;
  for (auto& registry : registries_) {
    const fs::path log = Root(registry->upstream) / "registry.log";
    std::error_code ec;
    const auto size = fs::file_size(log, ec);
    if (ec) continue;
    if (size < registry->log_offset) registry->log_offset = 0;
    std::ifstream in(log, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(registry->log_offset));
    std::vector<std::pair<std::string, std::uint64_t>> responses;  // (digest, bytes)
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // a line still being written: read it next time
      registry->log_offset += line.size() + 1;
      const std::string message = Field(line, "msg");
      // A blob or manifest the registry fetched from upstream and stored.
      constexpr std::string_view kScheduled = "Adding new scheduler entry for ";
      if (message.starts_with(kScheduled)) {
        const auto at = message.find('@');
        const auto with = message.find(' ', at);
        if (at != std::string::npos) ++registry->fetched[message.substr(at + 1, with - at - 1)];
        continue;
      }
      if (message != "response completed" || Field(line, "http.request.method") != "GET") continue;
      const std::string status = Field(line, "http.response.status");
      if (status != "200" && status != "206") continue;
      std::string uri = Field(line, "http.request.uri");
      uri = uri.substr(0, uri.find('?'));  // containerd adds ?ns=UPSTREAM
      const auto blobs = uri.find("/blobs/");
      if (!uri.starts_with("/v2/") || blobs == std::string::npos) continue;
      std::uint64_t bytes = 0;
      try {
        bytes = std::stoull(Field(line, "http.response.written"));
      } catch (const std::exception&) {
      }
      responses.emplace_back(uri.substr(blobs + 7), bytes);
    }
    // The registry logs a blob as stored once it has streamed it to the
    // client, so a response may come before its entry: one not matched now
    // is matched at the next reading, and counted as a hit only then.
    // Warming's requests count like the nodes': its fetches are the misses.
    std::vector<std::pair<std::string, std::uint64_t>> later;
    auto classify = [&](const std::pair<std::string, std::uint64_t>& response, bool final) {
      const auto& [digest, bytes] = response;
      auto it = registry->fetched.find(digest);
      if (it != registry->fetched.end() && it->second > 0) {
        if (--it->second == 0) registry->fetched.erase(it);
        ++misses;
      } else if (final) {
        ++hits;
      } else {
        later.push_back(response);
        return;
      }
      served_bytes += bytes;
    };
    for (const auto& response : registry->pending) classify(response, true);
    for (const auto& response : responses) classify(response, false);
    registry->pending = std::move(later);
  }
  totals_.hits += hits;
  totals_.misses += misses;
  totals_.served_bytes += served_bytes;
  if (metrics_ && (hits > 0 || misses > 0)) {
    metrics_->CountRequests("images", hits, misses);
    metrics_->CountServedBytes("images", served_bytes);
  }
  return totals_;
}

void RegistryMirrors::Supervise() {
  for (int round = 1;; ++round) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, std::chrono::seconds(2), [this] { return stopping_; });
      if (stopping_) return;
      const auto now = std::chrono::steady_clock::now();
      for (auto& registry : registries_) {
        int status = 0;
        if (registry->pid != 0 && waitpid(registry->pid, &status, WNOHANG) == registry->pid) {
          registry->pid = 0;
          registry->retry_at = now + options_.retry_after;
          registry->error = fmt::format("docker-registry mirroring {} exited ({}): {}",
                                        registry->upstream, DescribeExit(status),
                                        FirstProblem(Root(registry->upstream) / "registry.log"));
          spdlog::warn("image cache: {}; started again in {} ms", registry->error,
                       options_.retry_after.count());
        } else if (registry->pid == 0 && !gateways_.empty() && now >= registry->retry_at) {
          if (auto started = StartLocked(*registry); !started) {
            registry->error = started.error().message;
            spdlog::error("image cache: {}", registry->error);
          }
        }
      }
    }
    (void)Poll();
    if (metrics_ && round % 15 == 0) {
      double total = 0;
      for (const auto& upstream : kMirroredUpstreams) {
        total += DiskUsage(Root(upstream.name) / "storage");
      }
      metrics_->SetStoredBytes("images", total);
    }
  }
}

}  // namespace vmlab::reconcilers::cache
