#include "controller/controller_command.h"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "controller/api.h"
#include "controller/http_server.h"
#include "controller/logging.h"
#include "controller/manager.h"
#include "controller/manifest_source.h"
#include "controller/state_dir.h"
#include "controller/status_store.h"
#include "controller/version.h"
#include "controller/work_queue.h"
#include "metrics/bootstrap_metrics.h"
#include "metrics/cache_metrics.h"
#include "metrics/controller_metrics.h"
#include "metrics/hypervisor_metrics.h"
#include "metrics/lab_metrics.h"
#include "metrics/registry.h"
#include "reconcilers/cache/apt_cache.h"
#include "reconcilers/cache/golden_images.h"
#include "reconcilers/cache/registry_mirrors.h"
#include "reconcilers/infrastructure/fault_injection.h"
#include "reconcilers/infrastructure/libvirt_connection.h"
#include "reconcilers/infrastructure/libvirt_hypervisor.h"
#include "reconcilers/labcluster_reconciler.h"

namespace vmlab::controller {
namespace {

constexpr const char* kControllerName = "labcluster";

// Keeps the libvirt connection up: retries with backoff (1 s doubling to 30 s)
// until stopped.
class ConnectionKeeper {
 public:
  explicit ConnectionKeeper(reconcilers::infrastructure::LibvirtConnection& connection)
      : connection_(connection), thread_([this] { Loop(); }) {}
  ~ConnectionKeeper() {
    {
      std::lock_guard guard(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void Loop() {
    auto delay = std::chrono::seconds(1);
    std::string last_error;
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      const auto ensured = connection_.Ensure();
      lock.lock();
      if (ensured) {
        if (!last_error.empty()) {
          spdlog::info("libvirt: connected to {} (driver {})", connection_.uri(),
                       connection_.driver());
        }
        last_error.clear();
        delay = std::chrono::seconds(5);  // liveness check interval
      } else {
        if (ensured.error().message != last_error) spdlog::error("{}", ensured.error().message);
        last_error = ensured.error().message;
        delay = std::min(std::chrono::seconds(30), delay * 2);
      }
      cv_.wait_for(lock, delay, [this] { return stopping_; });
    }
  }

  reconcilers::infrastructure::LibvirtConnection& connection_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

int RunController(const ControllerOptions& options) {
  LogFormat log_format = LogFormat::kLogfmt;
  if (!ParseLogFormat(options.log_format, log_format)) {
    spdlog::error("--log-format {}: give logfmt or json", options.log_format);
    return 2;
  }
  SetUpLogging(log_format, options.log_level);
  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A write to a socket whose peer is gone (libvirtd killed in the middle of
  // a call, an API client that hung up) is an EPIPE error to handle, never the
  // end of the controller. Found by tests/e2e/crash_test.py (libvirtd SIGKILLed).
  ::signal(SIGPIPE, SIG_IGN);

  if (auto mode = reconcilers::cache::CheckAptCacheMode(options.apt_cache); !mode) {
    spdlog::error("{}", mode.error().message);
    return 2;
  }
  if (auto mode = reconcilers::cache::CheckImageCacheMode(options.image_cache); !mode) {
    spdlog::error("{}", mode.error().message);
    return 2;
  }
  auto given_mirrors =
      reconcilers::cache::ParseUpstreamUrls(options.registry_mirrors, "--registry-mirror");
  auto upstream_urls =
      reconcilers::cache::ParseUpstreamUrls(options.registry_upstreams, "--registry-upstream");
  for (const auto* parsed : {&given_mirrors, &upstream_urls}) {
    if (!*parsed) {
      spdlog::error("{}", parsed->error().message);
      return 2;
    }
  }
  if (!(options.kubernetes_packages.starts_with("https://") ||
        options.kubernetes_packages.starts_with("http://")) ||
      options.kubernetes_packages.find_first_of(" \"'\\") != std::string::npos) {
    spdlog::error(
        "--kubernetes-packages {}: give the http:// or https:// URL of a mirror of "
        "https://pkgs.k8s.io/core:/stable:/",
        options.kubernetes_packages);
    return 2;
  }
  if (options.simulate_guests && !options.libvirt_uri.starts_with("test:")) {
    spdlog::error(
        "--simulate-guests plays guests on libvirt's test driver only; with {} real guests "
        "run: drop the flag, or use --libvirt test:///default",
        options.libvirt_uri);
    return 2;
  }
  // The API: on this host only, unless clients must present a token.
  HttpServerLimits http_limits;
  auto listen = ParseListenAddress(options.listen);
  if (!listen) {
    spdlog::error("--listen: {}", listen.error().message);
    return 2;
  }
  if (!options.api_token_file.empty()) {
    auto token = ReadBearerToken(options.api_token_file);
    if (!token) {
      spdlog::error("--api-token-file: {}", token.error().message);
      return 2;
    }
    http_limits.bearer_token = *token;
  } else if (!IsLoopbackHost(listen->first)) {
    spdlog::error(
        "--listen {}: the API and /metrics would be reachable from other hosts without "
        "authentication; give --api-token-file FILE (clients then present that bearer token), "
        "or listen on 127.0.0.1",
        options.listen);
    return 2;
  }
  auto lock = StateDirLock::Acquire(options.state_dir);
  if (!lock) {
    spdlog::error("{}", lock.error().message);
    return 1;
  }
  spdlog::info("vmlab {} (commit {}) starting: watch {}, state dir {}, libvirt {}", kVersion,
               kGitCommit, options.watch.string(), options.state_dir.string(), options.libvirt_uri);
  for (const auto& leftover : RemoveLeftoverTempFiles(options.state_dir)) {
    spdlog::info("removed {}: a write cut short when vmlab last stopped", leftover.string());
  }
  if (const long n = reconcilers::infrastructure::KillAfterMutation(); n > 0) {
    spdlog::warn(
        "fault injection: this process kills itself after its libvirt change {} "
        "(VMLAB_FAULT_KILL_AFTER_MUTATION; for tests only)",
        n);
  }

  RealClock clock;
  metrics::Registry registry;
  metrics::ControllerMetrics controller_metrics(registry, kControllerName);
  metrics::LabMetrics lab_metrics(registry);
  metrics::HypervisorMetrics hypervisor_metrics(registry);

  StatusStore store(options.state_dir);
  if (auto loaded = store.Load(); !loaded) spdlog::error("{}", loaded.error().message);

  WorkQueue queue(clock, WorkQueueOptions{}, &controller_metrics);
  ManifestSourceOptions source_options;
  source_options.folder = options.watch;
  source_options.debounce = options.debounce;
  source_options.deletion_grace = options.deletion_grace;
  ManifestSource source(
      clock, source_options, [&queue](const std::string& name) { queue.Add(name); }, &lab_metrics);

  reconcilers::infrastructure::LibvirtConnection libvirt(options.libvirt_uri, &hypervisor_metrics);
  reconcilers::infrastructure::LibvirtHypervisor hypervisor(libvirt);
  // Lifecycle events only enqueue the owning lab; the reconcile reads everything again.
  hypervisor.WatchEvents([&queue](const std::string& lab) { queue.Add(lab); });
  // libvirt needs absolute paths for the pool and the disks.
  reconcilers::InfrastructureReconciler infrastructure(
      hypervisor, std::filesystem::absolute(options.state_dir).string(), options.parallel_nodes);
  reconcilers::bootstrap::SecretStore secrets(std::filesystem::absolute(options.state_dir));
  metrics::BootstrapMetrics bootstrap_metrics(registry);
  // Progress reports only enqueue the lab; its reconcile reads them all.
  reconcilers::bootstrap::ProgressStore progress(
      clock, [&queue](const std::string& lab) { queue.Add(lab); }, &bootstrap_metrics);
  std::optional<reconcilers::bootstrap::GuestSimulator> simulator;
  if (options.simulate_guests) {
    reconcilers::bootstrap::SimulationOptions simulation;
    simulation.speed = options.simulate_speed;
    simulator.emplace(clock, progress, simulation);
    spdlog::info(
        "guests are simulated (speed {}): vmlab plays every node's phases; no "
        "Kubernetes runs",
        options.simulate_speed);
  }
  metrics::CacheMetrics cache_metrics(registry);
  reconcilers::bootstrap::ProgressListeners listeners(progress, &cache_metrics);
  reconcilers::cache::ArchiveIndex archive_index;
  reconcilers::cache::AptCache apt_cache(
      {options.apt_cache, std::filesystem::absolute(options.state_dir), options.apt_cache_port},
      &cache_metrics);
  reconcilers::cache::RegistryMirrors registry_mirrors(
      {options.image_cache, *given_mirrors, *upstream_urls,
       std::filesystem::absolute(options.state_dir), options.image_cache_port},
      &cache_metrics);
  reconcilers::cache::GoldenImages golden_images({std::filesystem::absolute(options.state_dir)},
                                                 &cache_metrics);
  reconcilers::bootstrap::NodeEnvironment node_environment;
  node_environment.kubernetes_packages = options.kubernetes_packages;
  reconcilers::LabClusterReconciler reconciler(
      source, store, infrastructure, secrets, node_environment, clock, &lab_metrics,
      {&progress, simulator ? &*simulator : nullptr, &listeners, options.progress_port,
       [](reconcilers::bootstrap::KubernetesAccess access) {
         return reconcilers::bootstrap::MakeKubernetesClient(std::move(access));
       },
       [](reconcilers::bootstrap::EtcdAccess access) {
         return reconcilers::bootstrap::MakeEtcdClient(std::move(access));
       },
       2379, std::chrono::duration_cast<std::chrono::seconds>(options.drain_timeout), &apt_cache,
       &archive_index, &registry_mirrors, &golden_images, options.cache_warming});

  auto all_keys = [&] {
    std::set<std::string> keys;
    for (const auto& name : source.Names()) keys.insert(name);
    for (const auto& record : store.List()) keys.insert(record.name);
    return std::vector<std::string>(keys.begin(), keys.end());
  };
  ManagerOptions manager_options;
  manager_options.workers = options.workers;
  manager_options.resync = options.resync;
  manager_options.reconcile_timeout = options.reconcile_timeout;
  manager_options.on_timeout = [&store, &clock, &options](const std::string& key,
                                                          Duration running) {
    const auto recorded =
        RecordReconcileTimeout(store, key, running, options.reconcile_timeout, clock.WallNow());
    if (!recorded) spdlog::error("{}", recorded.error().message);
  };
  Manager manager(clock, queue, reconciler, &controller_metrics, manager_options, all_keys);

  std::atomic<bool> shutting_down{false};
  ApiContext api;
  api.desired = &source;
  api.store = &store;
  api.registry = &registry;
  api.not_ready = [&]() -> std::optional<std::string> {
    if (shutting_down) return "shutting down";
    if (!source.InitialScanDone()) {
      const std::string error = source.FolderError();
      return error.empty() ? "initial scan of the watch folder not done" : error;
    }
    if (!libvirt.connected())
      return fmt::format("not connected to libvirt at {}", options.libvirt_uri);
    return std::nullopt;
  };
  HttpServer http(
      options.listen,
      [&api](std::string_view method, std::string_view path) {
        return HandleApiRequest(api, method, path);
      },
      http_limits);
  if (auto started = http.Start(); !started) {
    spdlog::error("{}", started.error().message);
    return 1;
  }
  spdlog::info("API on {0}/api/v1/labclusters, metrics on {0}/metrics", http.url());

  // One attempt before the first reconcile, so labs are not marked
  // HypervisorUnavailable merely because the controller just started.
  if (auto connected = libvirt.Ensure(); connected) {
    spdlog::info("libvirt: connected to {} (driver {})", libvirt.uri(), libvirt.driver());
  } else {
    spdlog::error("{}", connected.error().message);
  }
  std::vector<std::string> known;
  for (const auto& record : store.List()) known.push_back(record.name);
  source.Start(known);
  for (const auto& name : known) queue.Add(name);
  std::thread source_thread([&source] { source.Run(); });
  manager.Start();
  ConnectionKeeper keeper(libvirt);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("received {}; shutting down (up to {} s for in-flight work)",
               signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
               std::chrono::duration_cast<std::chrono::seconds>(options.shutdown_timeout).count());
  shutting_down = true;
  source.Stop();
  source_thread.join();
  const bool drained = manager.Stop(options.shutdown_timeout);
  http.Stop();
  spdlog::info("stopped");
  return drained ? 0 : 1;
}

}  // namespace vmlab::controller
