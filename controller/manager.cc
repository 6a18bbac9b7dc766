#include "controller/manager.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>

#include "controller/logging.h"
#include "metrics/controller_metrics.h"

namespace vmlab::controller {

using metrics::ReconcileOutcome;

Manager::Manager(Clock& clock, WorkQueue& queue, Reconciler& reconciler,
                 metrics::ControllerMetrics* metrics, ManagerOptions options, KeyLister all_keys)
    : clock_(clock),
      queue_(queue),
      reconciler_(reconciler),
      metrics_(metrics),
      options_(options),
      all_keys_(std::move(all_keys)) {
  if (metrics_) {
    metrics_->SetMaxConcurrentReconciles(options_.workers);
    metrics_->SetActiveWorkers(0);
  }
}

Manager::~Manager() {
  if (!threads_.empty()) (void)Stop(std::chrono::seconds(30));
}

void Manager::Start() {
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { WorkerLoop(); });
  threads_.emplace_back([this] { HousekeepingLoop(); });
  spdlog::info("started {} workers; resync every {} s", options_.workers,
               std::chrono::duration_cast<std::chrono::seconds>(options_.resync).count());
}

bool Manager::Stop(Duration timeout) {
  {
    std::lock_guard guard(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  const bool drained = queue_.ShutDownWithDrain(timeout);
  if (!drained) {
    spdlog::error("reconciles still running after {} s; exiting without them",
                  std::chrono::duration_cast<std::chrono::seconds>(timeout).count());
    for (auto& thread : threads_) thread.detach();
  } else {
    for (auto& thread : threads_) thread.join();
  }
  threads_.clear();
  return drained;
}

void Manager::WorkerLoop() {
  while (auto key = queue_.Get()) Handle(*key);
}

bool Manager::ProcessNextItem() {
  auto key = queue_.TryGet();
  if (!key) return false;
  Handle(*key);
  return true;
}

void Manager::HousekeepingLoop() {
  SteadyTime next_resync = clock_.Now() + options_.resync;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const SteadyTime next_tick = std::min(next_resync, clock_.Now() + options_.housekeeping);
    clock_.WaitUntil(cv_, lock, next_tick);
    if (stopping_) break;
    queue_.UpdateUnfinishedWorkMetrics();
    if (clock_.Now() >= next_resync) {
      lock.unlock();
      for (const auto& key : all_keys_()) queue_.Add(key);
      lock.lock();
      next_resync = clock_.Now() + options_.resync;
    }
  }
}

void Manager::Handle(const std::string& key) {
  // Every line this reconcile logs, on this thread and the ones it starts,
  // names the lab and this reconcile.
  const LogFields log_fields({{"lab", key}, {"reconcile", NewReconcileId()}});
  const int active = ++active_;
  if (metrics_) metrics_->SetActiveWorkers(active);
  const SteadyTime start = clock_.Now();
  ReconcileOutcome outcome = ReconcileOutcome::kSuccess;
  try {
    const auto result = reconciler_.Reconcile(key);
    if (!result) {
      const bool terminal = !IsRetryable(result.error().code);
      outcome = ReconcileOutcome::kError;
      if (metrics_) metrics_->CountReconcileError(terminal);
      if (terminal) {
        spdlog::error("reconcile failed: {} (not retried: {})", result.error().message,
                      ErrorCodeName(result.error().code));
        queue_.Forget(key);
      } else {
        spdlog::warn(
            "reconcile failed: {} (retry in {} ms)", result.error().message,
            std::chrono::duration_cast<std::chrono::milliseconds>(queue_.NextBackoff(key)).count());
        queue_.AddRateLimited(key);
      }
    } else if (result->requeue_after > Duration::zero()) {
      outcome = ReconcileOutcome::kRequeueAfter;
      queue_.Forget(key);
      queue_.AddAfter(key, result->requeue_after);
    } else if (result->requeue) {
      outcome = ReconcileOutcome::kRequeue;
      queue_.AddRateLimited(key);
    } else {
      queue_.Forget(key);
    }
  } catch (const std::exception& e) {
    outcome = ReconcileOutcome::kError;
    spdlog::error("reconcile failed: unexpected exception: {}; retrying", e.what());
    if (metrics_) {
      metrics_->CountReconcilePanic();
      metrics_->CountReconcileError(false);
    }
    queue_.AddRateLimited(key);
  } catch (...) {
    outcome = ReconcileOutcome::kError;
    spdlog::error("reconcile failed: unexpected non-standard exception; retrying");
    if (metrics_) {
      metrics_->CountReconcilePanic();
      metrics_->CountReconcileError(false);
    }
    queue_.AddRateLimited(key);
  }
  const double seconds = Seconds(clock_.Now() - start);
  if (metrics_) metrics_->ObserveReconcile(outcome, seconds);
  spdlog::debug("reconcile done in {:.1f} ms", seconds * 1000);
  queue_.Done(key);
  const int remaining = --active_;
  if (metrics_) metrics_->SetActiveWorkers(remaining);
}

}  // namespace vmlab::controller
