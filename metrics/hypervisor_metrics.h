// Metrics of the controller's libvirt connection: vmlab_libvirt_connected,
// vmlab_libvirt_call_duration_seconds{op} and vmlab_libvirt_errors_total{op}.
// Thread-safe.
#pragma once

#include <memory>
#include <string_view>

#include "metrics/registry.h"

namespace vmlab::metrics {

class HypervisorMetrics {
 public:
  explicit HypervisorMetrics(Registry& registry);
  ~HypervisorMetrics();
  HypervisorMetrics(const HypervisorMetrics&) = delete;
  HypervisorMetrics& operator=(const HypervisorMetrics&) = delete;

  void SetConnected(bool connected);
  void ObserveCall(std::string_view op, double seconds, bool failed);

 private:
  struct Metrics;
  std::unique_ptr<Metrics> m_;
};

}  // namespace vmlab::metrics
