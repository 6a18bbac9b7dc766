// Pull-through registry mirrors for the labs' container images
// (`vmlab controller --image-cache`): off, or "managed": one docker-registry
// (Debian's distribution 2.8, proxy mode) per upstream registry —
// registry.k8s.io, docker.io, quay.io — listening only on a Unix socket under
// <state-dir>/cache/images/UPSTREAM, with its storage there, shared by every
// lab. Each lab's nodes reach it on their gateway (port + the upstream's
// index), relayed to the socket; nothing listens on any other address.
// Mirrors given with --registry-mirror UPSTREAM=URL are used instead of a
// managed one for that upstream. Nodes' containerd falls back to the upstream
// when a mirror fails (hosts.toml), so a mirror that is down slows pulls and
// breaks none. The registries' own logs are read for the metrics: a blob
// download is a miss when the registry fetched it from upstream to serve it,
// a hit when it came from storage. Thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crds/result.h"

namespace vmlab::metrics {
class CacheMetrics;
}  // namespace vmlab::metrics

namespace vmlab::reconcilers::cache {

class TcpRelay;

// The upstreams vmlab mirrors, in port order, and where each is fetched from.
struct Upstream {
  const char* name;
  const char* url;
};
inline constexpr Upstream kMirroredUpstreams[] = {
    {"registry.k8s.io", "https://registry.k8s.io"},
    {"docker.io", "https://registry-1.docker.io"},
    {"quay.io", "https://quay.io"},
};

struct RegistryMirrorsOptions {
  std::string mode = "off";  // "off" or "managed"
  // UPSTREAM -> URL of an existing mirror the nodes use instead (--registry-mirror).
  std::map<std::string, std::string> given;
  // UPSTREAM -> the URL a managed mirror fetches from, instead of the public
  // registry (--registry-upstream: a closer mirror; tests use a local registry).
  std::map<std::string, std::string> remotes;
  std::filesystem::path state_dir;
  int port = 5001;  // managed: registry.k8s.io on 5001, docker.io 5002, quay.io 5003
  std::string binary = "/usr/bin/docker-registry";
  // A registry that exited or failed to start is started again after this.
  std::chrono::milliseconds retry_after{10000};
};

// `--image-cache` and the UPSTREAM=URL lists, as the command line gives them.
[[nodiscard]] Status CheckImageCacheMode(const std::string& mode);
[[nodiscard]] Result<std::map<std::string, std::string>> ParseUpstreamUrls(
    const std::vector<std::string>& items, const char* flag);

struct RegistryTotals {
  std::uint64_t hits = 0;  // warming's requests included (its fetches are the misses)
  std::uint64_t misses = 0;
  std::uint64_t served_bytes = 0;
};

// Warming for one lab: its images that a managed mirror serves.
struct WarmStatus {
  int images = 0;   // asked for
  int warmed = 0;   // in the mirror now
  int failed = 0;   // could not be fetched (tried again 10 minutes later)
  int skipped = 0;  // of registries vmlab does not mirror
  std::string first_failure;
};

class RegistryMirrors {
 public:
  // `metrics` may be null.
  RegistryMirrors(RegistryMirrorsOptions options, metrics::CacheMetrics* metrics);
  ~RegistryMirrors();  // stops the registries it started
  RegistryMirrors(const RegistryMirrors&) = delete;
  RegistryMirrors& operator=(const RegistryMirrors&) = delete;

  [[nodiscard]] bool Enabled() const {
    return options_.mode == "managed" || !options_.given.empty();
  }
  [[nodiscard]] bool Managed() const { return options_.mode == "managed"; }

  // Makes the mirrors serve `lab`, whose nodes reach the host at `gateway`;
  // returns UPSTREAM -> mirror URL for its nodes' hosts.toml. Managed mirrors
  // are relayed from `gateway` when this returns (a registry that cannot
  // start yet is retried by the supervisor; nodes fall back meanwhile).
  [[nodiscard]] Result<std::map<std::string, std::string>> Serve(const std::string& lab,
                                                                 const std::string& gateway);
  void Release(const std::string& lab);
  RegistryTotals Poll();
  // Fetches `images` (normalised references) through the mirrors `lab`'s
  // gateway serves, in the background, so they are stored before the lab's
  // nodes pull them. An image warmed once is not fetched again.
  void Warm(const std::string& lab, const std::set<std::string>& images);
  [[nodiscard]] WarmStatus Warming(const std::string& lab);
  void Stop();
  // The managed registry's process id for an upstream (0: not running).
  [[nodiscard]] pid_t Pid(const std::string& upstream);
  // UPSTREAM -> why its managed mirror is down (it exited, or could not
  // start, and waits to be started again); empty when every one runs.
  [[nodiscard]] std::map<std::string, std::string> Problems();
  // Whether the managed mirror of `upstream` accepts connections now.
  [[nodiscard]] bool Serving(const std::string& upstream);
  [[nodiscard]] std::filesystem::path Root(const std::string& upstream) const;

 private:
  struct Registry;
  [[nodiscard]] Status StartLocked(Registry& registry);
  void StopLocked(Registry& registry);
  void Supervise();
  void RunWarmer();
  struct WarmResult {
    bool ok = false;
    std::string error;
    std::chrono::steady_clock::time_point at{};
  };

  const RegistryMirrorsOptions options_;
  metrics::CacheMetrics* const metrics_;
  std::mutex mutex_;
  std::map<std::string, std::string> gateways_;  // lab -> gateway
  std::vector<std::unique_ptr<Registry>> registries_;
  std::unique_ptr<TcpRelay> relay_;
  RegistryTotals totals_;
  bool stopping_ = false;
  std::condition_variable wake_;
  std::thread supervisor_;
  // Warming: what each lab asked for, the queue, and the results by image.
  std::map<std::string, std::set<std::string>> warm_wanted_;
  std::vector<std::pair<std::string, std::string>> warm_queue_;  // (image, mirror URL)
  std::set<std::string> warm_queued_;
  std::map<std::string, WarmResult> warm_results_;
  std::condition_variable warm_wake_;
  std::thread warmer_;
};

}  // namespace vmlab::reconcilers::cache
