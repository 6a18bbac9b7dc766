// The apt cache the lab's nodes use (`vmlab controller --apt-cache`): off,
// an existing proxy given by URL, or apt-cacher-ng run and supervised by
// vmlab ("managed"): its cache and log under <state-dir>/cache/apt, bound to
// the gateway address of every lab network that uses it (so reachable from
// the labs, and on no other address of the host), restarted when that set
// changes or when it exits. Its own log is read for the metrics: a file sent
// right after it was fetched from upstream is a miss, a file sent from what
// the cache holds a hit (error pages and reports count as neither).
// Thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
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

struct AptCacheOptions {
  std::string mode = "off";  // "off", "managed", or an http:// URL of an existing proxy
  std::filesystem::path state_dir;
  int port = 3142;
  std::string binary = "/usr/sbin/apt-cacher-ng";
  // Upstream ports nodes may fetch from through the cache (apt-cacher-ng's AllowUserPorts).
  std::vector<int> upstream_ports = {80, 443};
};

// `mode` as the command line gives it: off, managed, or http://HOST[:PORT][/].
[[nodiscard]] Status CheckAptCacheMode(const std::string& mode);

struct AptCacheTotals {
  std::uint64_t hits = 0;  // warming's requests included (its fetches are the misses)
  std::uint64_t misses = 0;
  std::uint64_t served_bytes = 0;
};

// Warming of one lab's packages (see AptCache::Warm).
struct AptWarmStatus {
  int packages = 0;  // .deb files chosen from the repository's index
  int warmed = 0;    // in the cache now
  bool done = false;
  std::string failure;  // why warming failed (tried again 10 minutes later)
};

// The index entries of a flat apt repository (its Packages file) warming
// picks from (amd64 or all): each of `pins` (name -> version prefix, "" for
// the newest) at its newest matching version, and the newest version of every package they
// depend on that the index has. Returns the Filename fields, or an error
// naming a pinned package the index lacks.
[[nodiscard]] Result<std::vector<std::string>> ChoosePackages(
    const std::string& packages_index, const std::map<std::string, std::string>& pins);

class AptCache {
 public:
  // `metrics` may be null.
  AptCache(AptCacheOptions options, metrics::CacheMetrics* metrics);
  ~AptCache();  // stops the apt-cacher-ng it started
  AptCache(const AptCache&) = delete;
  AptCache& operator=(const AptCache&) = delete;

  [[nodiscard]] bool Enabled() const { return options_.mode != "off"; }
  [[nodiscard]] bool Managed() const { return options_.mode == "managed"; }

  // Makes the cache serve `lab`, whose nodes reach the host at `gateway`;
  // returns the proxy URL for its nodes. Managed: apt-cacher-ng listens on
  // `gateway` when this returns.
  [[nodiscard]] Result<std::string> Serve(const std::string& lab, const std::string& gateway);
  // `lab` no longer needs the cache.
  void Release(const std::string& lab);
  // Reads what apt-cacher-ng logged since the last call into the metrics.
  AptCacheTotals Poll();
  // Managed: fetches the .deb files `pins` need from `repository` (a flat
  // repository as the nodes' apt sees it: http://HOST/PATH/ or
  // http://HTTPS///HOST/PATH/) through the cache, in the background, so that
  // the lab's nodes find them there. Done once per repository and pins.
  void Warm(const std::string& lab, const std::string& repository,
            const std::map<std::string, std::string>& pins);
  [[nodiscard]] AptWarmStatus Warming(const std::string& lab);
  void Stop();
  // The running apt-cacher-ng's process id (0: none), and why it last failed to start.
  [[nodiscard]] pid_t Pid();
  [[nodiscard]] std::string LastError();

 private:
  [[nodiscard]] Status StartLocked();  // mutex_ held
  // The addresses the labs need (mutex_ held).
  [[nodiscard]] std::set<std::string> Wanted() const;
  // Stops, then starts on Wanted() if any lab needs it (mutex_ held).
  [[nodiscard]] Status RestartLocked();
  void StopLocked();
  void Supervise();
  void RunWarmer();

  const AptCacheOptions options_;
  metrics::CacheMetrics* const metrics_;
  std::mutex mutex_;
  std::map<std::string, std::string> gateways_;  // lab -> gateway
  std::set<std::string> bound_;                  // addresses the running process listens on
  pid_t pid_ = 0;
  std::string last_error_;
  std::uintmax_t log_offset_ = 0;
  AptCacheTotals totals_;
  std::map<std::string, int> fetched_;  // path -> fetched from upstream, not yet sent
  bool stopping_ = false;
  std::condition_variable wake_;
  std::thread supervisor_;
  // Warming: jobs by key (repository and pins), which job each lab wants.
  struct WarmJob {
    std::string base;  // http://GATEWAY:PORT/ + the repository without http://
    std::map<std::string, std::string> pins;
    bool queued = false;
    AptWarmStatus status;
    std::chrono::steady_clock::time_point finished{};
  };
  std::map<std::string, WarmJob> warm_jobs_;
  std::map<std::string, std::string> warm_wanted_;  // lab -> job key
  std::condition_variable warm_wake_;
  std::thread warmer_;
};

}  // namespace vmlab::reconcilers::cache
