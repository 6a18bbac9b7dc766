// The generic controller metrics, with controller-runtime's exact names,
// types, labels and buckets, so dashboards for Kubernetes controllers work
// unchanged: controller_runtime_* (reconciles, errors, time, workers) and
// workqueue_* (depth, adds, latency, work duration, retries, unfinished work).
// Every known label combination is set to 0 at construction. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "metrics/registry.h"

namespace vmlab::metrics {

// The result label of controller_runtime_reconcile_total.
enum class ReconcileOutcome { kSuccess, kError, kRequeue, kRequeueAfter };

class ControllerMetrics {
 public:
  // `controller` is the label value (also the workqueue's name).
  ControllerMetrics(Registry& registry, std::string controller);
  ~ControllerMetrics();
  ControllerMetrics(const ControllerMetrics&) = delete;
  ControllerMetrics& operator=(const ControllerMetrics&) = delete;

  // controller_runtime_*
  void SetMaxConcurrentReconciles(int workers);
  void SetActiveWorkers(int workers);
  void ObserveReconcile(ReconcileOutcome outcome, double seconds);
  void CountReconcileError(bool terminal);
  void CountReconcilePanic();
  // A reconcile ran past its deadline (vmlab's addition, in the same namespace).
  void CountReconcileTimeout();

  // workqueue_*
  void QueueAdded();
  void SetQueueDepth(std::size_t depth);
  void ObserveQueueLatency(double seconds);
  void ObserveWorkDuration(double seconds);
  void QueueRetried();
  void SetUnfinishedWork(double unfinished_seconds, double longest_running_seconds);

 private:
  struct Metrics;
  std::unique_ptr<Metrics> m_;
};

}  // namespace vmlab::metrics
