#include "controller/manager.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "controller/fake_clock.h"
#include "metrics/controller_metrics.h"
#include "metrics/registry.h"

namespace vmlab::controller {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Answers each Reconcile with the next scripted outcome for its key.
class FakeReconciler final : public Reconciler {
 public:
  using Outcome = std::function<Result<ReconcileResult>()>;
  void Script(const std::string& key, std::vector<Outcome> outcomes) {
    std::lock_guard guard(mutex_);
    for (auto& o : outcomes) script_[key].push_back(std::move(o));
  }
  Result<ReconcileResult> Reconcile(const std::string& key) override {
    Outcome outcome;
    {
      std::lock_guard guard(mutex_);
      ++calls_[key];
      auto& queue = script_[key];
      if (queue.empty()) return ReconcileResult{};
      outcome = std::move(queue.front());
      queue.pop_front();
    }
    return outcome();
  }
  int Calls(const std::string& key) {
    std::lock_guard guard(mutex_);
    return calls_[key];
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::deque<Outcome>> script_;
  std::map<std::string, int> calls_;
};

class ManagerTest : public testing::Test {
 protected:
  bool Contains(const std::string& line) {
    return registry_.Serialize().find(line) != std::string::npos;
  }

  FakeClock clock_;
  metrics::Registry registry_;
  metrics::ControllerMetrics metrics_{registry_, "labcluster"};
  WorkQueue queue_{clock_, WorkQueueOptions{}, &metrics_};
  FakeReconciler reconciler_;
  std::vector<std::string> keys_{"a", "b"};
  Manager manager_{clock_,    queue_,           reconciler_,
                   &metrics_, ManagerOptions{}, [this] { return keys_; }};
};

TEST_F(ManagerTest, SuccessForgetsAndCounts) {
  queue_.Add("a");
  EXPECT_TRUE(manager_.ProcessNextItem());
  EXPECT_FALSE(manager_.ProcessNextItem());
  EXPECT_EQ(reconciler_.Calls("a"), 1);
  EXPECT_TRUE(Contains(
      "controller_runtime_reconcile_total{controller=\"labcluster\",result=\"success\"} 1"));
  EXPECT_TRUE(
      Contains("controller_runtime_reconcile_time_seconds_count{controller=\"labcluster\"} 1"));
  EXPECT_TRUE(
      Contains("controller_runtime_max_concurrent_reconciles{controller=\"labcluster\"} 2"));
  EXPECT_TRUE(Contains("controller_runtime_active_workers{controller=\"labcluster\"} 0"));
}

TEST_F(ManagerTest, RetryableErrorIsRetriedWithGrowingBackoff) {
  reconciler_.Script("a", {[] { return MakeError(ErrorCode::kUnavailable, "libvirt down"); },
                           [] { return MakeError(ErrorCode::kUnavailable, "libvirt down"); }});
  queue_.Add("a");
  EXPECT_TRUE(manager_.ProcessNextItem());
  EXPECT_FALSE(manager_.ProcessNextItem()) << "not before the 5 ms backoff";
  clock_.Advance(milliseconds(5));
  EXPECT_TRUE(manager_.ProcessNextItem());
  clock_.Advance(milliseconds(9));
  EXPECT_FALSE(manager_.ProcessNextItem()) << "second retry waits 10 ms";
  clock_.Advance(milliseconds(1));
  EXPECT_TRUE(manager_.ProcessNextItem());
  EXPECT_EQ(queue_.NumRequeues("a"), 0) << "success forgets the failures";
  EXPECT_TRUE(Contains("controller_runtime_reconcile_errors_total{controller=\"labcluster\"} 2"));
  EXPECT_TRUE(
      Contains("controller_runtime_reconcile_total{controller=\"labcluster\",result=\"error\"} 2"));
  EXPECT_TRUE(Contains("workqueue_retries_total{controller=\"labcluster\",name=\"labcluster\"} 2"));
}

TEST_F(ManagerTest, TerminalErrorIsNotRetried) {
  reconciler_.Script("a", {[] { return MakeError(ErrorCode::kInvalidArgument, "bad spec"); }});
  queue_.Add("a");
  EXPECT_TRUE(manager_.ProcessNextItem());
  clock_.Advance(seconds(2000));
  EXPECT_FALSE(manager_.ProcessNextItem());
  EXPECT_EQ(reconciler_.Calls("a"), 1);
  EXPECT_TRUE(
      Contains("controller_runtime_terminal_reconcile_errors_total{controller=\"labcluster\"} 1"));
}

TEST_F(ManagerTest, RequeueAfterComesBackAtThatTime) {
  reconciler_.Script("a", {[] { return ReconcileResult{.requeue_after = seconds(30)}; }});
  queue_.Add("a");
  EXPECT_TRUE(manager_.ProcessNextItem());
  clock_.Advance(seconds(29));
  EXPECT_FALSE(manager_.ProcessNextItem());
  clock_.Advance(seconds(1));
  EXPECT_TRUE(manager_.ProcessNextItem());
  EXPECT_TRUE(Contains(
      "controller_runtime_reconcile_total{controller=\"labcluster\",result=\"requeue_after\"} 1"));
}

TEST_F(ManagerTest, RequeueUsesBackoff) {
  reconciler_.Script("a", {[] { return ReconcileResult{.requeue = true}; }});
  queue_.Add("a");
  EXPECT_TRUE(manager_.ProcessNextItem());
  EXPECT_FALSE(manager_.ProcessNextItem());
  clock_.Advance(milliseconds(5));
  EXPECT_TRUE(manager_.ProcessNextItem());
  EXPECT_TRUE(Contains(
      "controller_runtime_reconcile_total{controller=\"labcluster\",result=\"requeue\"} 1"));
}

TEST_F(ManagerTest, ExceptionIsCaughtCountedAndRetried) {
  reconciler_.Script("a", {[]() -> Result<ReconcileResult> { throw std::runtime_error("boom"); }});
  queue_.Add("a");
  EXPECT_TRUE(manager_.ProcessNextItem());
  clock_.Advance(milliseconds(5));
  EXPECT_TRUE(manager_.ProcessNextItem());
  EXPECT_EQ(reconciler_.Calls("a"), 2);
  EXPECT_TRUE(Contains("controller_runtime_reconcile_panics_total{controller=\"labcluster\"} 1"));
  EXPECT_TRUE(
      Contains("controller_runtime_reconcile_total{controller=\"labcluster\",result=\"error\"} 1"));
}

TEST_F(ManagerTest, WorkersReconcileAndResyncEnqueuesEveryKey) {
  manager_.Start();
  queue_.Add("a");
  while (reconciler_.Calls("a") < 1) std::this_thread::yield();
  // Let the housekeeping thread block on the fake clock, then pass the resync period.
  while (clock_.Waiters() < 3) std::this_thread::yield();
  clock_.Advance(seconds(60));
  while (reconciler_.Calls("a") < 2 || reconciler_.Calls("b") < 1) std::this_thread::yield();
  EXPECT_TRUE(manager_.Stop(seconds(10)));
}

TEST_F(ManagerTest, StopWaitsForInFlightReconcile) {
  std::atomic<bool> release{false};
  std::atomic<bool> finished{false};
  reconciler_.Script("a", {[&]() -> Result<ReconcileResult> {
                       while (!release) std::this_thread::yield();
                       finished = true;
                       return ReconcileResult{};
                     }});
  manager_.Start();
  queue_.Add("a");
  while (reconciler_.Calls("a") < 1) std::this_thread::yield();
  std::atomic<bool> stop_returned{false};
  std::atomic<bool> drained{false};
  std::thread stopper([&] {
    drained = manager_.Stop(seconds(10));
    stop_returned = true;
  });
  while (!queue_.ShuttingDown()) std::this_thread::yield();
  EXPECT_FALSE(stop_returned) << "Stop returned while a reconcile was running";
  release = true;
  stopper.join();
  EXPECT_TRUE(drained);
  EXPECT_TRUE(finished);
}

TEST_F(ManagerTest, AStuckReconcileIsReportedAndTheOtherLabsGoOn) {
  std::atomic<bool> release{false};
  reconciler_.Script("stuck", {[&]() -> Result<ReconcileResult> {
                       while (!release) std::this_thread::sleep_for(milliseconds(1));
                       return ReconcileResult{};
                     }});
  std::mutex mutex;
  std::vector<std::string> timed_out;
  ManagerOptions options;
  options.workers = 1;
  options.reconcile_timeout = seconds(10);
  options.on_timeout = [&](const std::string& key, Duration running) {
    std::lock_guard guard(mutex);
    timed_out.push_back(key);
    EXPECT_GE(running, seconds(10));
  };
  Manager manager(clock_, queue_, reconciler_, &metrics_, options,
                  [] { return std::vector<std::string>{}; });
  manager.Start();
  queue_.Add("stuck");
  while (reconciler_.Calls("stuck") < 1) std::this_thread::yield();
  queue_.Add("other");
  clock_.Advance(seconds(9));
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(reconciler_.Calls("other"), 0) << "one worker, busy: the other lab waits";
  EXPECT_TRUE(
      Contains(R"(controller_runtime_reconcile_timeouts_total{controller="labcluster"} 0)"));
  // Past the deadline (the housekeeping thread looks every second).
  for (int i = 0; i < 1000 && reconciler_.Calls("other") < 1; ++i) {
    clock_.Advance(seconds(1));
    std::this_thread::sleep_for(milliseconds(2));
  }
  EXPECT_EQ(reconciler_.Calls("other"), 1) << "another worker took the other lab";
  for (int i = 0; i < 5; ++i) {  // more housekeeping ticks: still one report
    clock_.Advance(seconds(1));
    std::this_thread::sleep_for(milliseconds(5));
  }
  {
    std::lock_guard guard(mutex);
    EXPECT_EQ(timed_out, std::vector<std::string>{"stuck"}) << "reported once";
  }
  EXPECT_TRUE(
      Contains(R"(controller_runtime_reconcile_timeouts_total{controller="labcluster"} 1)"));
  EXPECT_EQ(manager.Workers(), 2) << "one added while the stuck reconcile runs";
  release = true;
  // Once it ends, the added worker retires at its next item.
  queue_.Add("third");
  for (int i = 0; i < 2000 && (manager.Workers() != 1 || reconciler_.Calls("third") < 1); ++i) {
    clock_.Advance(milliseconds(10));
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_EQ(reconciler_.Calls("third"), 1);
  EXPECT_EQ(manager.Workers(), 1) << "back to --workers";
  EXPECT_TRUE(manager.Stop(seconds(10)));
}

}  // namespace
}  // namespace vmlab::controller
