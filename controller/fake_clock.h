// FakeClock: simulated time for tests. Time moves only when Advance is called;
// Advance wakes every thread blocked in WaitUntil so it can re-check its
// deadline. Thread-safe. Waiters must not outlive the clock.
#pragma once

#include <algorithm>
#include <vector>

#include "controller/clock.h"

namespace vmlab::controller {

class FakeClock final : public Clock {
 public:
  FakeClock()
      : now_(std::chrono::hours(1000)),
        wall_epoch_(std::chrono::sys_days{std::chrono::year{2026} / 1 / 1}) {}

  [[nodiscard]] SteadyTime Now() const override {
    std::lock_guard guard(mutex_);
    return now_;
  }
  [[nodiscard]] WallTime WallNow() const override {
    std::lock_guard guard(mutex_);
    return wall_epoch_ + std::chrono::duration_cast<WallTime::duration>(now_.time_since_epoch());
  }
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 SteadyTime deadline) override {
    Waiter self{&cv, lock.mutex()};
    {
      std::lock_guard guard(mutex_);
      if (now_ >= deadline) return;
      waiters_.push_back(self);
    }
    cv.wait(lock);
    std::lock_guard guard(mutex_);
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), self));
  }

  // Moves time forward and wakes all waiters.
  void Advance(Duration by) {
    std::vector<Waiter> waiters;
    {
      std::lock_guard guard(mutex_);
      now_ += by;
      waiters = waiters_;
    }
    for (const Waiter& waiter : waiters) {
      // Taking the waiter's mutex orders this notify after its deadline check.
      std::lock_guard guard(*waiter.mutex);
      waiter.cv->notify_all();
    }
  }

  // Number of threads blocked in WaitUntil, for tests that sync with a worker.
  [[nodiscard]] std::size_t Waiters() const {
    std::lock_guard guard(mutex_);
    return waiters_.size();
  }

 private:
  struct Waiter {
    std::condition_variable* cv;
    std::mutex* mutex;
    friend bool operator==(const Waiter&, const Waiter&) = default;
  };

  mutable std::mutex mutex_;
  SteadyTime now_;
  WallTime wall_epoch_;
  std::vector<Waiter> waiters_;
};

}  // namespace vmlab::controller
