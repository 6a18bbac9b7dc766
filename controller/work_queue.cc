#include "controller/work_queue.h"

#include <algorithm>
#include <cmath>

#include "metrics/controller_metrics.h"

namespace vmlab::controller {

WorkQueue::WorkQueue(Clock& clock, WorkQueueOptions options, metrics::ControllerMetrics* metrics)
    : clock_(clock), options_(options), metrics_(metrics) {}

void WorkQueue::Add(const std::string& key) {
  std::lock_guard guard(mutex_);
  AddLocked(key);
}

void WorkQueue::AddLocked(const std::string& key) {
  if (shutting_down_ || dirty_.contains(key)) return;
  if (metrics_) metrics_->QueueAdded();
  dirty_.insert(key);
  if (processing_.contains(key)) return;  // Done will queue it
  queue_.push_back(key);
  added_at_.try_emplace(key, clock_.Now());
  if (metrics_) metrics_->SetQueueDepth(queue_.size());
  cv_.notify_one();
}

void WorkQueue::AddAfter(const std::string& key, Duration delay) {
  std::lock_guard guard(mutex_);
  if (shutting_down_) return;
  if (delay <= Duration::zero()) {
    AddLocked(key);
    return;
  }
  const SteadyTime ready = clock_.Now() + delay;
  auto it = waiting_.find(key);
  if (it != waiting_.end()) {
    if (it->second <= ready) return;  // keep the earlier ready time
    waiting_by_time_.erase({it->second, key});
    it->second = ready;
  } else {
    waiting_.emplace(key, ready);
  }
  waiting_by_time_.emplace(ready, key);
  cv_.notify_all();  // a waiting Get may need to wake earlier
}

Duration WorkQueue::NextBackoff(const std::string& key) const {
  std::lock_guard guard(mutex_);
  const auto it = failures_.find(key);
  const int exponent = it == failures_.end() ? 0 : it->second;
  // base * 2^exponent, computed in floating point to avoid overflow, then capped.
  const double delay = static_cast<double>(options_.base_delay.count()) * std::exp2(exponent);
  if (delay >= static_cast<double>(options_.max_delay.count())) return options_.max_delay;
  return Duration(static_cast<Duration::rep>(delay));
}

void WorkQueue::AddRateLimited(const std::string& key) {
  const Duration delay = NextBackoff(key);
  {
    std::lock_guard guard(mutex_);
    if (shutting_down_) return;
    ++failures_[key];
    if (metrics_) metrics_->QueueRetried();
  }
  AddAfter(key, delay);
}

void WorkQueue::Forget(const std::string& key) {
  std::lock_guard guard(mutex_);
  failures_.erase(key);
}

int WorkQueue::NumRequeues(const std::string& key) const {
  std::lock_guard guard(mutex_);
  const auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

SteadyTime WorkQueue::PromoteReadyLocked() {
  const SteadyTime now = clock_.Now();
  while (!waiting_by_time_.empty() && waiting_by_time_.begin()->first <= now) {
    const std::string key = waiting_by_time_.begin()->second;
    waiting_by_time_.erase(waiting_by_time_.begin());
    waiting_.erase(key);
    AddLocked(key);
  }
  return waiting_by_time_.empty() ? SteadyTime::max() : waiting_by_time_.begin()->first;
}

std::optional<std::string> WorkQueue::PopLocked() {
  if (queue_.empty()) return std::nullopt;
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  const SteadyTime now = clock_.Now();
  if (auto it = added_at_.find(key); it != added_at_.end()) {
    if (metrics_) metrics_->ObserveQueueLatency(Seconds(now - it->second));
    added_at_.erase(it);
  }
  processing_.emplace(key, now);
  dirty_.erase(key);
  if (metrics_) metrics_->SetQueueDepth(queue_.size());
  return key;
}

std::optional<std::string> WorkQueue::Get() {
  std::unique_lock lock(mutex_);
  while (true) {
    if (shutting_down_) return std::nullopt;
    const SteadyTime next_ready = PromoteReadyLocked();
    if (!queue_.empty()) return PopLocked();
    clock_.WaitUntil(cv_, lock, next_ready);
  }
}

std::optional<std::string> WorkQueue::TryGet() {
  std::lock_guard guard(mutex_);
  if (shutting_down_) return std::nullopt;
  PromoteReadyLocked();
  return PopLocked();
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard guard(mutex_);
  const auto it = processing_.find(key);
  if (it == processing_.end()) return;
  if (metrics_) metrics_->ObserveWorkDuration(Seconds(clock_.Now() - it->second));
  processing_.erase(it);
  if (dirty_.contains(key) && !shutting_down_) {
    queue_.push_back(key);
    added_at_.try_emplace(key, clock_.Now());
    if (metrics_) metrics_->SetQueueDepth(queue_.size());
  }
  cv_.notify_all();  // a new key for Get, or one fewer in flight for a drain
}

void WorkQueue::ShutDown() {
  std::lock_guard guard(mutex_);
  shutting_down_ = true;
  cv_.notify_all();
}

bool WorkQueue::ShutDownWithDrain(Duration timeout) {
  std::unique_lock lock(mutex_);
  shutting_down_ = true;
  cv_.notify_all();
  const SteadyTime deadline = clock_.Now() + timeout;
  while (!processing_.empty()) {
    if (clock_.Now() >= deadline) return false;
    clock_.WaitUntil(cv_, lock, deadline);
  }
  return true;
}

bool WorkQueue::ShuttingDown() const {
  std::lock_guard guard(mutex_);
  return shutting_down_;
}

std::size_t WorkQueue::Len() const {
  std::lock_guard guard(mutex_);
  return queue_.size();
}

std::size_t WorkQueue::Waiting() const {
  std::lock_guard guard(mutex_);
  return waiting_.size();
}

void WorkQueue::UpdateUnfinishedWorkMetrics() {
  std::lock_guard guard(mutex_);
  if (!metrics_) return;
  const SteadyTime now = clock_.Now();
  double total = 0;
  double longest = 0;
  for (const auto& [key, start] : processing_) {
    const double seconds = Seconds(now - start);
    total += seconds;
    longest = std::max(longest, seconds);
  }
  metrics_->SetUnfinishedWork(total, longest);
}

}  // namespace vmlab::controller
