// A rate-limited work queue with client-go's semantics, for cluster names.
//
// - A key is in at most one of: waiting to be handed out (dirty, queued) or
//   being processed. Adding a queued key again does nothing; adding a key that
//   is being processed marks it dirty, and Done puts it back: one key is never
//   handled by two workers at once, and repeated adds collapse into one.
// - AddAfter keeps the earlier ready time when a key is already waiting.
// - AddRateLimited delays by a per-key exponential backoff (base * 2^failures,
//   capped); Forget resets a key's failures after a success.
// - ShutDown makes Get return nullopt; ShutDownWithDrain also waits for keys
//   being processed to be Done.
// Thread-safe. Time comes from the Clock, so tests drive it with FakeClock.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "controller/clock.h"

namespace vmlab::metrics {
class ControllerMetrics;
}  // namespace vmlab::metrics

namespace vmlab::controller {

struct WorkQueueOptions {
  Duration base_delay = std::chrono::milliseconds(5);
  Duration max_delay = std::chrono::seconds(1000);
};

class WorkQueue {
 public:
  // `metrics` may be null; it must outlive the queue.
  WorkQueue(Clock& clock, WorkQueueOptions options, metrics::ControllerMetrics* metrics = nullptr);

  void Add(const std::string& key);
  void AddAfter(const std::string& key, Duration delay);
  void AddRateLimited(const std::string& key);
  void Forget(const std::string& key);
  [[nodiscard]] int NumRequeues(const std::string& key) const;
  // The delay the next AddRateLimited of `key` would use.
  [[nodiscard]] Duration NextBackoff(const std::string& key) const;

  // Blocks until a key is ready, then marks it processing. nullopt once shut down.
  [[nodiscard]] std::optional<std::string> Get();
  // Get without blocking: nullopt when no key is ready now.
  [[nodiscard]] std::optional<std::string> TryGet();
  // Ends processing of `key` (from Get); re-queues it if it was added meanwhile.
  void Done(const std::string& key);

  void ShutDown();
  // ShutDown, then wait until no key is processing or `timeout` passes; false on timeout.
  [[nodiscard]] bool ShutDownWithDrain(Duration timeout);
  [[nodiscard]] bool ShuttingDown() const;

  // Keys ready to be handed out (not those waiting for their time).
  [[nodiscard]] std::size_t Len() const;
  // Keys waiting for a ready time (AddAfter / AddRateLimited).
  [[nodiscard]] std::size_t Waiting() const;
  // Refreshes workqueue_unfinished_work_seconds and _longest_running_processor_seconds.
  void UpdateUnfinishedWorkMetrics();

 private:
  void AddLocked(const std::string& key);
  // Moves waiting keys whose time has come into the queue; returns the next ready time.
  SteadyTime PromoteReadyLocked();
  std::optional<std::string> PopLocked();

  Clock& clock_;
  const WorkQueueOptions options_;
  metrics::ControllerMetrics* const metrics_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::unordered_set<std::string> dirty_;
  std::unordered_map<std::string, SteadyTime> processing_;  // key -> start
  std::unordered_map<std::string, SteadyTime> added_at_;    // key -> when it was queued
  std::map<std::string, SteadyTime> waiting_;               // key -> ready time
  std::set<std::pair<SteadyTime, std::string>> waiting_by_time_;
  std::unordered_map<std::string, int> failures_;
  bool shutting_down_ = false;
};

}  // namespace vmlab::controller
