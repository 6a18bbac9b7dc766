// Manager: runs a Reconciler over a WorkQueue with N workers, the way
// controller-runtime's controller does: results decide requeues (after a
// delay, with backoff, or not at all), an exception escaping Reconcile is
// caught, logged, counted and retried, every key known is resynced
// periodically, and Stop drains in-flight work within a bound.
//
// Thread-safe; Start and Stop from the owning thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controller/clock.h"
#include "controller/reconciler.h"
#include "controller/work_queue.h"

namespace vmlab::metrics {
class ControllerMetrics;
}  // namespace vmlab::metrics

namespace vmlab::controller {

struct ManagerOptions {
  int workers = 2;
  Duration resync = std::chrono::seconds(60);
  // How often workqueue_unfinished_work_seconds is refreshed (and stuck
  // reconciles looked for).
  Duration housekeeping = std::chrono::seconds(1);
  // A reconcile running longer is reported (log, on_timeout, the timeouts
  // counter) and a worker is added for the other labs while it runs on, up
  // to `workers` added workers.
  Duration reconcile_timeout = std::chrono::minutes(10);
  // Called (on the housekeeping thread) once per reconcile past its deadline.
  std::function<void(const std::string& key, Duration running)> on_timeout;
};

class Manager {
 public:
  using KeyLister = std::function<std::vector<std::string>()>;

  // `metrics` may be null. All references must outlive the manager.
  Manager(Clock& clock, WorkQueue& queue, Reconciler& reconciler,
          metrics::ControllerMetrics* metrics, ManagerOptions options, KeyLister all_keys);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Starts the workers and the resync timer.
  void Start();
  // Stops taking work, lets in-flight reconciles finish for up to `timeout`.
  // Returns false when some did not (their threads are left to the process exit).
  [[nodiscard]] bool Stop(Duration timeout);

  // Worker threads running now: --workers, plus one per reconcile past its
  // deadline while it runs (for tests and diagnostics).
  [[nodiscard]] int Workers();

  // Takes one ready key (without blocking) and reconciles it on the calling
  // thread; false when none was ready. For tests and benchmarks.
  bool ProcessNextItem();

 private:
  struct InFlight {
    std::string key;
    std::string reconcile_id;
    SteadyTime started;
    bool timed_out = false;
  };

  void WorkerLoop();
  void HousekeepingLoop();
  void Handle(const std::string& key);
  // Marks reconciles past their deadline and adds a worker for each (under
  // mutex_); returns them, to be reported without the lock.
  std::vector<InFlight> CheckDeadlines();

  Clock& clock_;
  WorkQueue& queue_;
  Reconciler& reconciler_;
  metrics::ControllerMetrics* const metrics_;
  const ManagerOptions options_;
  const KeyLister all_keys_;

  std::vector<std::thread> threads_;
  std::atomic<int> active_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::uint64_t next_in_flight_ = 0;
  std::map<std::uint64_t, InFlight> in_flight_;  // guarded by mutex_
  int workers_ = 0;                              // worker threads running, guarded by mutex_
  int stuck_ = 0;  // reconciles past their deadline still running, guarded by mutex_
  std::vector<std::thread::id> retired_;  // workers that returned, to join; guarded by mutex_
};

}  // namespace vmlab::controller
