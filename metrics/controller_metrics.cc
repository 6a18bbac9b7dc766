#include "metrics/controller_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cmath>

namespace vmlab::metrics {
namespace {

// prometheus.ExponentialBuckets(10e-9, 10, 12), as client-go's workqueue uses.
prometheus::Histogram::BucketBoundaries WorkqueueBuckets() {
  prometheus::Histogram::BucketBoundaries buckets;
  for (int i = 0; i < 12; ++i) buckets.push_back(10e-9 * std::pow(10.0, i));
  return buckets;
}

// controller-runtime's controller_runtime_reconcile_time_seconds buckets.
prometheus::Histogram::BucketBoundaries ReconcileBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1,  0.15, 0.2,  0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6,
          0.7,   0.8,  0.9,   1.0,  1.25, 1.5,  1.75, 2.0,  2.5, 3.0,  3.5, 4.0,  4.5, 5,
          6,     7,    8,     9,    10,   15,   20,   25,   30,  40,   50,  60};
}

}  // namespace

struct ControllerMetrics::Metrics {
  prometheus::Counter* reconcile_success;
  prometheus::Counter* reconcile_error;
  prometheus::Counter* reconcile_requeue;
  prometheus::Counter* reconcile_requeue_after;
  prometheus::Counter* errors;
  prometheus::Counter* terminal_errors;
  prometheus::Counter* panics;
  prometheus::Counter* timeouts;
  prometheus::Histogram* reconcile_time;
  prometheus::Gauge* max_concurrent;
  prometheus::Gauge* active_workers;

  prometheus::Gauge* depth;
  prometheus::Counter* adds;
  prometheus::Histogram* queue_latency;
  prometheus::Histogram* work_duration;
  prometheus::Gauge* unfinished;
  prometheus::Gauge* longest_running;
  prometheus::Counter* retries;
};

ControllerMetrics::ControllerMetrics(Registry& registry, std::string controller)
    : m_(std::make_unique<Metrics>()) {
  auto& r = registry.prometheus();
  const prometheus::Labels by_controller{{"controller", controller}};
  auto& total = prometheus::BuildCounter()
                    .Name("controller_runtime_reconcile_total")
                    .Help("Total number of reconciliations per controller")
                    .Register(r);
  auto result = [&](const char* value) -> prometheus::Counter* {
    return &total.Add({{"controller", controller}, {"result", value}});
  };
  m_->reconcile_success = result("success");
  m_->reconcile_error = result("error");
  m_->reconcile_requeue = result("requeue");
  m_->reconcile_requeue_after = result("requeue_after");
  m_->errors = &prometheus::BuildCounter()
                    .Name("controller_runtime_reconcile_errors_total")
                    .Help("Total number of reconciliation errors per controller")
                    .Register(r)
                    .Add(by_controller);
  m_->terminal_errors = &prometheus::BuildCounter()
                             .Name("controller_runtime_terminal_reconcile_errors_total")
                             .Help("Total number of terminal reconciliation errors per controller")
                             .Register(r)
                             .Add(by_controller);
  m_->panics = &prometheus::BuildCounter()
                    .Name("controller_runtime_reconcile_panics_total")
                    .Help("Total number of reconciliation panics per controller")
                    .Register(r)
                    .Add(by_controller);
  m_->timeouts =
      &prometheus::BuildCounter()
           .Name("controller_runtime_reconcile_timeouts_total")
           .Help("Total number of reconciles that ran past their deadline per controller")
           .Register(r)
           .Add(by_controller);
  m_->reconcile_time = &prometheus::BuildHistogram()
                            .Name("controller_runtime_reconcile_time_seconds")
                            .Help("Length of time per reconciliation per controller")
                            .Register(r)
                            .Add(by_controller, ReconcileBuckets());
  m_->max_concurrent = &prometheus::BuildGauge()
                            .Name("controller_runtime_max_concurrent_reconciles")
                            .Help("Maximum number of concurrent reconciles per controller")
                            .Register(r)
                            .Add(by_controller);
  m_->active_workers = &prometheus::BuildGauge()
                            .Name("controller_runtime_active_workers")
                            .Help("Number of currently used workers per controller")
                            .Register(r)
                            .Add(by_controller);

  const prometheus::Labels queue{{"name", controller}, {"controller", controller}};
  m_->depth = &prometheus::BuildGauge()
                   .Name("workqueue_depth")
                   .Help("Current depth of workqueue")
                   .Register(r)
                   .Add(queue);
  m_->adds = &prometheus::BuildCounter()
                  .Name("workqueue_adds_total")
                  .Help("Total number of adds handled by workqueue")
                  .Register(r)
                  .Add(queue);
  m_->queue_latency = &prometheus::BuildHistogram()
                           .Name("workqueue_queue_duration_seconds")
                           .Help(
                               "How long in seconds an item stays in workqueue before being "
                               "requested")
                           .Register(r)
                           .Add(queue, WorkqueueBuckets());
  m_->work_duration = &prometheus::BuildHistogram()
                           .Name("workqueue_work_duration_seconds")
                           .Help("How long in seconds processing an item from workqueue takes.")
                           .Register(r)
                           .Add(queue, WorkqueueBuckets());
  m_->unfinished = &prometheus::BuildGauge()
                        .Name("workqueue_unfinished_work_seconds")
                        .Help(
                            "How many seconds of work has been done that is in progress and "
                            "hasn't been observed by work_duration. Large values indicate "
                            "stuck threads. One can deduce the number of stuck threads by "
                            "observing the rate at which this increases.")
                        .Register(r)
                        .Add(queue);
  m_->longest_running = &prometheus::BuildGauge()
                             .Name("workqueue_longest_running_processor_seconds")
                             .Help(
                                 "How many seconds has the longest running processor for "
                                 "workqueue been running.")
                             .Register(r)
                             .Add(queue);
  m_->retries = &prometheus::BuildCounter()
                     .Name("workqueue_retries_total")
                     .Help("Total number of retries handled by workqueue")
                     .Register(r)
                     .Add(queue);
}

ControllerMetrics::~ControllerMetrics() = default;

void ControllerMetrics::SetMaxConcurrentReconciles(int workers) {
  m_->max_concurrent->Set(workers);
}
void ControllerMetrics::SetActiveWorkers(int workers) { m_->active_workers->Set(workers); }

void ControllerMetrics::ObserveReconcile(ReconcileOutcome outcome, double seconds) {
  switch (outcome) {
    case ReconcileOutcome::kSuccess:
      m_->reconcile_success->Increment();
      break;
    case ReconcileOutcome::kError:
      m_->reconcile_error->Increment();
      break;
    case ReconcileOutcome::kRequeue:
      m_->reconcile_requeue->Increment();
      break;
    case ReconcileOutcome::kRequeueAfter:
      m_->reconcile_requeue_after->Increment();
      break;
  }
  m_->reconcile_time->Observe(seconds);
}

void ControllerMetrics::CountReconcileError(bool terminal) {
  m_->errors->Increment();
  if (terminal) m_->terminal_errors->Increment();
}
void ControllerMetrics::CountReconcilePanic() { m_->panics->Increment(); }
void ControllerMetrics::CountReconcileTimeout() { m_->timeouts->Increment(); }

void ControllerMetrics::QueueAdded() { m_->adds->Increment(); }
void ControllerMetrics::SetQueueDepth(std::size_t depth) {
  m_->depth->Set(static_cast<double>(depth));
}
void ControllerMetrics::ObserveQueueLatency(double seconds) { m_->queue_latency->Observe(seconds); }
void ControllerMetrics::ObserveWorkDuration(double seconds) { m_->work_duration->Observe(seconds); }
void ControllerMetrics::QueueRetried() { m_->retries->Increment(); }
void ControllerMetrics::SetUnfinishedWork(double unfinished_seconds,
                                          double longest_running_seconds) {
  m_->unfinished->Set(unfinished_seconds);
  m_->longest_running->Set(longest_running_seconds);
}

}  // namespace vmlab::metrics
