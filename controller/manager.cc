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
  {
    std::lock_guard guard(mutex_);
    workers_ = options_.workers;
  }
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
  while (auto key = queue_.Get()) {
    Handle(*key);
    std::lock_guard guard(mutex_);
    if (workers_ > options_.workers + stuck_) {  // added for a stuck reconcile that ended
      --workers_;
      retired_.push_back(std::this_thread::get_id());  // joined by the housekeeping thread
      return;
    }
  }
}

std::vector<Manager::InFlight> Manager::CheckDeadlines() {
  // Retired workers have returned (or are returning: they hold no lock).
  for (const auto id : retired_) {
    const auto it = std::find_if(threads_.begin(), threads_.end(),
                                 [id](const std::thread& t) { return t.get_id() == id; });
    if (it != threads_.end()) {
      it->join();
      threads_.erase(it);
    }
  }
  retired_.clear();
  std::vector<InFlight> late;
  const SteadyTime now = clock_.Now();
  for (auto& [id, work] : in_flight_) {
    if (work.timed_out || now - work.started < options_.reconcile_timeout) continue;
    work.timed_out = true;
    ++stuck_;
    late.push_back(work);
    // The stuck reconcile keeps its worker (nothing can stop it safely); the
    // other labs get one more, up to twice the configured number.
    if (!stopping_ && workers_ < 2 * options_.workers) {
      ++workers_;
      threads_.emplace_back([this] { WorkerLoop(); });
    }
  }
  return late;
}

int Manager::Workers() {
  std::lock_guard guard(mutex_);
  return workers_;
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
    const auto late = CheckDeadlines();
    if (!late.empty()) {
      lock.unlock();
      for (const auto& work : late) {
        const LogFields fields({{"lab", work.key}, {"reconcile", work.reconcile_id}});
        const auto running = clock_.Now() - work.started;
        spdlog::warn(
            "reconcile still running after {} s, past its deadline of {} s; the other labs "
            "go on with another worker",
            std::chrono::duration_cast<std::chrono::seconds>(running).count(),
            std::chrono::duration_cast<std::chrono::seconds>(options_.reconcile_timeout).count());
        if (metrics_) metrics_->CountReconcileTimeout();
        if (options_.on_timeout) options_.on_timeout(work.key, running);
      }
      lock.lock();
    }
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
  const std::string reconcile_id = NewReconcileId();
  const LogFields log_fields({{"lab", key}, {"reconcile", reconcile_id}});
  std::uint64_t in_flight_id = 0;
  {
    std::lock_guard guard(mutex_);
    in_flight_id = next_in_flight_++;
    in_flight_[in_flight_id] = {key, reconcile_id, clock_.Now(), false};
  }
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
  bool was_late = false;
  {
    std::lock_guard guard(mutex_);
    was_late = in_flight_[in_flight_id].timed_out;
    in_flight_.erase(in_flight_id);
    if (was_late) --stuck_;
  }
  if (was_late) {
    spdlog::warn("reconcile done after {:.0f} s, past its deadline", seconds);
  } else {
    spdlog::debug("reconcile done in {:.1f} ms", seconds * 1000);
  }
  queue_.Done(key);
  const int remaining = --active_;
  if (metrics_) metrics_->SetActiveWorkers(remaining);
}

}  // namespace vmlab::controller
