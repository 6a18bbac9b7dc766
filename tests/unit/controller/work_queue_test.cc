#include "controller/work_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "controller/fake_clock.h"
#include "metrics/controller_metrics.h"
#include "metrics/registry.h"

namespace vmlab::controller {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class WorkQueueTest : public testing::Test {
 protected:
  FakeClock clock_;
  metrics::Registry registry_;
  metrics::ControllerMetrics metrics_{registry_, "labcluster"};
  WorkQueue queue_{clock_, WorkQueueOptions{}, &metrics_};
};

TEST_F(WorkQueueTest, CollapsesRepeatedAdds) {
  queue_.Add("a");
  queue_.Add("a");
  queue_.Add("b");
  queue_.Add("a");
  EXPECT_EQ(queue_.Len(), 2u);
  EXPECT_EQ(queue_.TryGet(), "a");
  EXPECT_EQ(queue_.TryGet(), "b");
  EXPECT_EQ(queue_.TryGet(), std::nullopt);
}

TEST_F(WorkQueueTest, NeverHandsOutAKeyThatIsBeingProcessed) {
  queue_.Add("a");
  ASSERT_EQ(queue_.TryGet(), "a");
  queue_.Add("a");  // changed while processing
  EXPECT_EQ(queue_.Len(), 0u);
  EXPECT_EQ(queue_.TryGet(), std::nullopt);
  queue_.Done("a");
  EXPECT_EQ(queue_.Len(), 1u);
  EXPECT_EQ(queue_.TryGet(), "a");
  queue_.Done("a");
  EXPECT_EQ(queue_.TryGet(), std::nullopt);
}

TEST_F(WorkQueueTest, TwoWorkersNeverHoldTheSameKey) {
  std::atomic<int> holders{0};
  std::atomic<bool> overlap{false};
  std::atomic<int> handled{0};
  RealClock real_clock;  // real threads contend here, so real time
  WorkQueue queue(real_clock, WorkQueueOptions{});
  auto worker = [&] {
    while (auto key = queue.Get()) {
      if (holders.fetch_add(1) != 0) overlap = true;
      std::this_thread::yield();
      holders.fetch_sub(1);
      ++handled;
      queue.Done(*key);
    }
  };
  std::thread a(worker);
  std::thread b(worker);
  for (int i = 0; i < 20000; ++i) queue.Add("only-key");
  while (queue.Len() > 0) std::this_thread::yield();
  EXPECT_TRUE(queue.ShutDownWithDrain(seconds(10)));
  a.join();
  b.join();
  EXPECT_FALSE(overlap);
  EXPECT_GE(handled, 1);
}

TEST_F(WorkQueueTest, AddAfterWaitsForItsTime) {
  queue_.AddAfter("a", seconds(2));
  EXPECT_EQ(queue_.TryGet(), std::nullopt);
  EXPECT_EQ(queue_.Waiting(), 1u);
  clock_.Advance(milliseconds(1999));
  EXPECT_EQ(queue_.TryGet(), std::nullopt);
  clock_.Advance(milliseconds(1));
  EXPECT_EQ(queue_.TryGet(), "a");
  EXPECT_EQ(queue_.Waiting(), 0u);
}

TEST_F(WorkQueueTest, AddAfterKeepsTheEarlierReadyTime) {
  queue_.AddAfter("a", seconds(1));
  queue_.AddAfter("a", seconds(10));  // later: ignored
  clock_.Advance(seconds(1));
  EXPECT_EQ(queue_.TryGet(), "a");
  queue_.Done("a");

  queue_.AddAfter("b", seconds(10));
  queue_.AddAfter("b", seconds(1));  // earlier: wins
  clock_.Advance(seconds(1));
  EXPECT_EQ(queue_.TryGet(), "b");
  queue_.Done("b");
  clock_.Advance(seconds(10));
  EXPECT_EQ(queue_.TryGet(), std::nullopt) << "the later time must not add it again";
}

TEST_F(WorkQueueTest, DelayedKeysComeOutInReadyOrder) {
  queue_.AddAfter("late", seconds(3));
  queue_.AddAfter("early", seconds(1));
  queue_.AddAfter("middle", seconds(2));
  clock_.Advance(seconds(3));
  EXPECT_EQ(queue_.TryGet(), "early");
  EXPECT_EQ(queue_.TryGet(), "middle");
  EXPECT_EQ(queue_.TryGet(), "late");
}

TEST_F(WorkQueueTest, BackoffDoublesFromFiveMillisecondsAndCapsAtOneThousandSeconds) {
  std::vector<Duration> delays;
  for (int i = 0; i < 20; ++i) {
    delays.push_back(queue_.NextBackoff("a"));
    queue_.AddRateLimited("a");
  }
  EXPECT_EQ(delays[0], milliseconds(5));
  EXPECT_EQ(delays[1], milliseconds(10));
  EXPECT_EQ(delays[2], milliseconds(20));
  EXPECT_EQ(delays[10], milliseconds(5120));
  EXPECT_EQ(delays[17], milliseconds(655360));
  EXPECT_EQ(delays[18], seconds(1000));
  EXPECT_EQ(delays[19], seconds(1000));
  EXPECT_EQ(queue_.NumRequeues("a"), 20);
  EXPECT_EQ(queue_.NextBackoff("other"), milliseconds(5)) << "backoff is per key";
}

TEST_F(WorkQueueTest, ForgetResetsTheBackoff) {
  queue_.AddRateLimited("a");
  queue_.AddRateLimited("a");
  EXPECT_EQ(queue_.NextBackoff("a"), milliseconds(20));
  queue_.Forget("a");
  EXPECT_EQ(queue_.NumRequeues("a"), 0);
  EXPECT_EQ(queue_.NextBackoff("a"), milliseconds(5));
}

TEST_F(WorkQueueTest, RateLimitedKeyArrivesAfterItsBackoff) {
  queue_.AddRateLimited("a");
  EXPECT_EQ(queue_.TryGet(), std::nullopt);
  clock_.Advance(milliseconds(5));
  EXPECT_EQ(queue_.TryGet(), "a");
}

TEST_F(WorkQueueTest, BlockedGetWakesWhenSimulatedTimeReachesADelayedKey) {
  queue_.AddAfter("a", seconds(30));
  std::optional<std::string> got;
  std::thread worker([&] { got = queue_.Get(); });
  while (clock_.Waiters() == 0) std::this_thread::yield();
  clock_.Advance(seconds(30));
  worker.join();
  EXPECT_EQ(got, "a");
}

TEST_F(WorkQueueTest, ShutDownReleasesBlockedGetAndRefusesAdds) {
  std::optional<std::string> got = "sentinel";
  std::thread worker([&] { got = queue_.Get(); });
  while (clock_.Waiters() == 0) std::this_thread::yield();
  queue_.ShutDown();
  worker.join();
  EXPECT_EQ(got, std::nullopt);
  queue_.Add("a");
  EXPECT_EQ(queue_.Len(), 0u);
  EXPECT_TRUE(queue_.ShuttingDown());
}

TEST_F(WorkQueueTest, ShutDownWithDrainWaitsForInFlightWork) {
  queue_.Add("a");
  ASSERT_EQ(queue_.TryGet(), "a");
  std::atomic<bool> drained{false};
  std::thread stopper([&] { drained = queue_.ShutDownWithDrain(seconds(60)); });
  while (clock_.Waiters() == 0) std::this_thread::yield();
  EXPECT_FALSE(drained);
  queue_.Done("a");
  stopper.join();
  EXPECT_TRUE(drained);
}

TEST_F(WorkQueueTest, ShutDownWithDrainGivesUpAfterItsTimeout) {
  queue_.Add("a");
  ASSERT_EQ(queue_.TryGet(), "a");
  std::atomic<bool> result{true};
  std::thread stopper([&] { result = queue_.ShutDownWithDrain(seconds(5)); });
  while (clock_.Waiters() == 0) std::this_thread::yield();
  clock_.Advance(seconds(5));
  stopper.join();
  EXPECT_FALSE(result);
}

TEST_F(WorkQueueTest, ReportsWorkqueueMetrics) {
  queue_.Add("a");
  queue_.Add("b");
  clock_.Advance(milliseconds(3));
  ASSERT_EQ(queue_.TryGet(), "a");
  clock_.Advance(seconds(2));
  queue_.UpdateUnfinishedWorkMetrics();
  std::string text = registry_.Serialize();
  EXPECT_NE(text.find("workqueue_adds_total{controller=\"labcluster\",name=\"labcluster\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("workqueue_depth{controller=\"labcluster\",name=\"labcluster\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("workqueue_longest_running_processor_seconds{controller=\"labcluster\","
                      "name=\"labcluster\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("workqueue_queue_duration_seconds_count{controller=\"labcluster\","
                      "name=\"labcluster\"} 1"),
            std::string::npos);
  queue_.Done("a");
  queue_.AddRateLimited("a");
  text = registry_.Serialize();
  EXPECT_NE(text.find("workqueue_work_duration_seconds_sum{controller=\"labcluster\","
                      "name=\"labcluster\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("workqueue_retries_total{controller=\"labcluster\",name=\"labcluster\"} 1"),
            std::string::npos);
}

}  // namespace
}  // namespace vmlab::controller
