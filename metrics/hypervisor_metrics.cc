#include "metrics/hypervisor_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <mutex>
#include <string>

namespace vmlab::metrics {

struct HypervisorMetrics::Metrics {
  prometheus::Gauge* connected;
  prometheus::Family<prometheus::Histogram>* durations;
  prometheus::Family<prometheus::Counter>* errors;
  std::mutex mutex;
  std::map<std::string, std::pair<prometheus::Histogram*, prometheus::Counter*>, std::less<>> ops;

  // The histogram and error counter of `op`, created on first use. Caller holds `mutex`
  // (or is the constructor).
  std::pair<prometheus::Histogram*, prometheus::Counter*> Series(std::string_view op) {
    if (auto it = ops.find(op); it != ops.end()) return it->second;
    const prometheus::Labels labels{{"op", std::string(op)}};
    auto* histogram = &durations->Add(
        labels, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                        0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    auto* counter = &errors->Add(labels);
    return ops.emplace(std::string(op), std::pair{histogram, counter}).first->second;
  }
};

HypervisorMetrics::HypervisorMetrics(Registry& registry) : m_(std::make_unique<Metrics>()) {
  auto& r = registry.prometheus();
  m_->connected = &prometheus::BuildGauge()
                       .Name("vmlab_libvirt_connected")
                       .Help("1 when the controller's libvirt connection is open and alive")
                       .Register(r)
                       .Add({});
  m_->durations = &prometheus::BuildHistogram()
                       .Name("vmlab_libvirt_call_duration_seconds")
                       .Help("Duration of libvirt API calls by operation")
                       .Register(r);
  m_->errors = &prometheus::BuildCounter()
                    .Name("vmlab_libvirt_errors_total")
                    .Help("Failed libvirt API calls by operation")
                    .Register(r);
  m_->Series("connect");  // the one operation every controller does starts at 0
}

HypervisorMetrics::~HypervisorMetrics() = default;

void HypervisorMetrics::SetConnected(bool connected) { m_->connected->Set(connected ? 1 : 0); }

void HypervisorMetrics::ObserveCall(std::string_view op, double seconds, bool failed) {
  std::lock_guard guard(m_->mutex);
  auto [histogram, counter] = m_->Series(op);
  histogram->Observe(seconds);
  if (failed) counter->Increment();
}

}  // namespace vmlab::metrics
