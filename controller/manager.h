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
  // How often workqueue_unfinished_work_seconds is refreshed.
  Duration housekeeping = std::chrono::seconds(1);
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

  // Takes one ready key (without blocking) and reconciles it on the calling
  // thread; false when none was ready. For tests and benchmarks.
  bool ProcessNextItem();

 private:
  void WorkerLoop();
  void HousekeepingLoop();
  void Handle(const std::string& key);

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
};

}  // namespace vmlab::controller
