// Time as the controller sees it: a monotonic clock for deadlines and a wall
// clock for timestamps, behind one seam so tests can drive time (FakeClock).
//
// WaitUntil is the only blocking primitive: code that waits for a deadline
// loops on its own predicate around it, so a fake clock can wake it when time
// is advanced. Implementations are thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace vmlab::controller {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using Duration = std::chrono::nanoseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual SteadyTime Now() const = 0;
  [[nodiscard]] virtual WallTime WallNow() const = 0;
  // Blocks on `cv` (with `lock` held, as std::condition_variable::wait) until
  // it is notified or this clock reaches `deadline`. May wake spuriously.
  virtual void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         SteadyTime deadline) = 0;
};

// The process's real clocks. Thread-safe, stateless.
class RealClock final : public Clock {
 public:
  [[nodiscard]] SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
  [[nodiscard]] WallTime WallNow() const override { return std::chrono::system_clock::now(); }
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 SteadyTime deadline) override {
    if (deadline == SteadyTime::max()) {
      cv.wait(lock);
    } else {
      cv.wait_until(lock, deadline);
    }
  }
};

// Seconds as a double, for metrics.
[[nodiscard]] inline double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace vmlab::controller
